//! `FoundryProject`: names a Foundry project and the identity used to reach it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::SecretKeyRef;

/// A Foundry project (an `accounts/{account}/projects/{project}` resource of
/// `Microsoft.CognitiveServices`) and the identity the operator uses for it. Nothing is created in
/// Azure for this object: it resolves the project's ARM id, its data-plane endpoint and a token
/// credential, and is Ready once an authenticated read succeeds.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.foundry.dev",
    version = "v1alpha1",
    kind = "FoundryProject",
    namespaced,
    doc = "A Foundry project and the identity the operator uses to reach it.",
    status = "FoundryProjectStatus",
    shortname = "fproj",
    category = "foundry",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.armId) != (has(self.subscriptionId) || has(self.resourceGroup) || has(self.account) || has(self.project))").message("set either armId or subscriptionId, resourceGroup, account and project, not both"),
    validation = kube::core::Rule::new("has(self.armId) || (has(self.subscriptionId) && has(self.resourceGroup) && has(self.account) && has(self.project))").message("subscriptionId, resourceGroup, account and project are all required when armId is not set"),
)]
#[serde(rename_all = "camelCase")]
pub struct FoundryProjectSpec {
    /// Azure subscription id (a UUID) of the Foundry account. Use with resourceGroup, account and
    /// project, or set armId instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(
        r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub subscription_id: Option<String>,

    /// Resource group of the Foundry account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 90), pattern(r"^[-\w._()]+$"))]
    pub resource_group: Option<String>,

    /// Name of the Foundry (Cognitive Services) account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), pattern(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub account: Option<String>,

    /// Name of the project within the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 64), pattern(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub project: Option<String>,

    /// Full ARM id of the project, instead of the four fields above:
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{a}/projects/{p}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]+/providers/Microsoft\.CognitiveServices/accounts/[a-zA-Z0-9][a-zA-Z0-9_.-]*/projects/[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub arm_id: Option<String>,

    /// Data-plane endpoint of the project. Default:
    /// `https://{account}.services.ai.azure.com/api/projects/{project}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https://[^\s/?#@]+(/[^\s?#]*)?$"))]
    pub endpoint: Option<String>,

    /// Azure Resource Manager endpoint. Default: `https://management.azure.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https://[^\s/?#@]+/?$"))]
    pub management_endpoint: Option<String>,

    /// api-version used for ARM connection calls (project and account scope). Default:
    /// `2026-09-01`, the newest GA; `2025-12-01` and the other api-versions ARM accepts for
    /// connections may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$"))]
    pub arm_api_version: Option<String>,

    /// The identity the operator uses for this project: exactly one of workloadIdentity,
    /// clientSecret, managedIdentity or operatorDefault.
    pub identity: ProjectIdentity,

    /// Microsoft Entra authority host, for sovereign clouds and tests. Default:
    /// `https://login.microsoftonline.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https://[^\s/?#@]+/?$"))]
    pub authority_host: Option<String>,

    /// While true the controller reads and writes nothing for this object; status keeps what it
    /// last knew. Deletion still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// The identity used for a project: exactly one member is set.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = kube::core::Rule::new("[has(self.workloadIdentity), has(self.clientSecret), has(self.managedIdentity), has(self.operatorDefault)].filter(x, x).size() == 1").message("set exactly one of workloadIdentity, clientSecret, managedIdentity, operatorDefault"))]
#[serde(rename_all = "camelCase")]
pub struct ProjectIdentity {
    /// Microsoft Entra Workload ID: a token is requested for the named ServiceAccount of this
    /// object's namespace (never the operator's own), and exchanged for an Entra token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// An Entra application with a client secret read from a Secret in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecretIdentity>,
    /// The managed identity of the node or pod the operator runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<ManagedIdentity>,
    /// The operator's own identity. Refused unless the operator is installed with
    /// `allowOperatorDefaultIdentity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_default: Option<OperatorDefaultIdentity>,
}

/// Microsoft Entra Workload ID federation for a ServiceAccount of this namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// Client (application) id of the Entra application or user-assigned managed identity.
    #[schemars(length(min = 1, max = 128))]
    pub client_id: String,
    /// Entra tenant id.
    #[schemars(length(min = 1, max = 128))]
    pub tenant_id: String,
    /// ServiceAccount in this namespace whose token is exchanged (it must carry the federated
    /// credential).
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: String,
}

/// An Entra application authenticating with a client secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretIdentity {
    /// Client (application) id.
    #[schemars(length(min = 1, max = 128))]
    pub client_id: String,
    /// Entra tenant id.
    #[schemars(length(min = 1, max = 128))]
    pub tenant_id: String,
    /// The Secret key holding the client secret.
    pub secret_ref: SecretKeyRef,
}

/// The managed identity of the environment the operator runs in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentity {
    /// Client id of a user-assigned identity; empty for the system-assigned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub client_id: Option<String>,
}

/// Marker for the operator's own identity (no fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperatorDefaultIdentity {}

/// Observed state of a FoundryProject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryProjectStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The project's resolved ARM id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm_id: Option<String>,
    /// The project's resolved data-plane endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The last `reconcile.fluxcd.io/requestedAt` annotation value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}
