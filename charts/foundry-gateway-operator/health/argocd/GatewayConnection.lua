-- Argo CD health check of gateway.foundry.dev/GatewayConnection, for Argo CD's Lua 5.1 (gopher-lua).
-- Source: charts/foundry-gateway-operator/health/argocd/GatewayConnection.lua (tested against real objects).
local hs = {}

local function find(conditions, wanted)
  for _, c in ipairs(conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function explain(c)
  local reason = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    return reason .. ": " .. c.message
  end
  return reason
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the operator reads and writes nothing for this object"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end

-- Ready=True only counts for the current generation: status and Ready must both describe it.
local generation = obj.metadata.generation
local function behind(observed)
  return generation ~= nil and observed ~= nil and observed ~= generation
end
local ready = find(status.conditions, "Ready")
if ready == nil or behind(status.observedGeneration) or behind(ready.observedGeneration) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = find(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = explain(stalled)
  return hs
end

local reconciling = find(status.conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = explain(reconciling)
  return hs
end

-- The gateway failed its probes: Inactive until it answers again (it recovers on its own).
local active = find(status.conditions, "GatewayActive")
if active ~= nil and active.status == "False" then
  hs.status = "Degraded"
  hs.message = "Gateway Inactive: " .. explain(active)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = explain(ready)
  return hs
end
if ready.status == "False" then
  -- Not ready and not working on it: GatewayInactive, a referenced object not Ready, ...
  hs.status = "Degraded"
  hs.message = explain(ready)
  return hs
end
hs.status = "Progressing"
hs.message = explain(ready)
return hs
