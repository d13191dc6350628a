//! The node's configuration files, rendered from paths and ports (pure, so tests can read them).

use std::path::Path;

use super::{BRIDGE, CGROUP_ROOT, NODE_IP, NODE_NAME, POD_SUBNET};
use crate::kubernetes::SERVICE_CLUSTER_IP_RANGE;

/// Paths and ports the files name.
#[derive(Debug, Clone)]
pub(crate) struct Layout<'a> {
    pub dir: &'a Path,
    pub containerd_socket: &'a Path,
    pub runc: &'a Path,
    pub cni_bin_dir: &'a Path,
    pub pause_image: &'a str,
    pub ca_file: &'a Path,
    pub kubeconfig: &'a Path,
    pub kubelet_port: u16,
    pub kubelet_healthz_port: u16,
    pub proxy_healthz_port: u16,
    pub proxy_metrics_port: u16,
}

/// containerd's config (version 2, containerd 1.6): everything below the node's folder, the CRI
/// plugin with our pause image, runc and CNI, and `restrict_oom_score_adj` because the test bed
/// may lack CAP_SYS_RESOURCE.
pub(crate) fn containerd(l: &Layout<'_>) -> String {
    let dir = l.dir.display();
    format!(
        r#"version = 2
root = "{dir}/containerd/root"
state = "{dir}/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{dir}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{dir}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{dir}/containerd/certs.d"
"#,
        socket = l.containerd_socket.display(),
        pause = l.pause_image,
        runc = l.runc.display(),
        cni_bin = l.cni_bin_dir.display(),
    )
}

/// containerd's `hosts.toml` for the registry at `host`: pull and resolve over HTTPS, trusting
/// `ca_file` (and nothing said about any other registry).
pub(crate) fn registry_host(host: &str, ca_file: &Path) -> String {
    format!(
        r#"server = "https://{host}"

[host."https://{host}"]
  capabilities = ["pull", "resolve"]
  ca = "{ca}"
"#,
        ca = ca_file.display(),
    )
}

/// The CNI network: our bridge, addresses of [`POD_SUBNET`] handed out by host-local (its data
/// below the node's folder), no masquerading, and no default route: a pod reaches the pod subnet
/// and the Service range, nothing else.
pub(crate) fn cni(l: &Layout<'_>) -> String {
    let gateway = NODE_IP;
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "foundry-testbed",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "isDefaultGateway": false,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": POD_SUBNET, "gateway": gateway.to_string() }]],
                "routes": [{ "dst": SERVICE_CLUSTER_IP_RANGE }],
                "dataDir": format!("{}/cni/ipam", l.dir.display()),
            },
        }],
    })
    .to_string()
}

/// The kubelet's config: the cgroup v1 and no-swap allowances of these machines, its own cgroup
/// root, logs below the node's folder, no DNS of the host, image GC and eviction out of the way
/// of a small disk.
pub(crate) fn kubelet(l: &Layout<'_>) -> String {
    let dir = l.dir.display();
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "{NODE_IP}"
port: {port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: "{ca}"
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: "{CGROUP_ROOT}"
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://{socket}"
podLogsDir: "{dir}/pod-logs"
resolvConf: ""
clusterDomain: cluster.local
staticPodPath: ""
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
localStorageCapacityIsolation: false
protectKernelDefaults: false
"#,
        port = l.kubelet_port,
        healthz = l.kubelet_healthz_port,
        ca = l.ca_file.display(),
        socket = l.containerd_socket.display(),
    )
}

/// kube-proxy's config: iptables mode, node ports only on the bridge (so it leaves
/// `route_localnet` alone), conntrack sysctls left as they are.
pub(crate) fn kube_proxy(l: &Layout<'_>) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: "{kubeconfig}"
hostnameOverride: {NODE_NAME}
bindAddress: 127.0.0.1
healthzBindAddress: "127.0.0.1:{healthz}"
metricsBindAddress: "127.0.0.1:{metrics}"
mode: iptables
clusterCIDR: "{POD_SUBNET}"
nodePortAddresses: ["{POD_SUBNET}"]
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"#,
        kubeconfig = l.kubeconfig.display(),
        healthz = l.proxy_healthz_port,
        metrics = l.proxy_metrics_port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_keeps_the_node_inside_its_folder_and_network() {
        let dir = Path::new("/state/node");
        let layout = Layout {
            dir,
            containerd_socket: &dir.join("containerd.sock"),
            runc: Path::new("/cache/usr/sbin/runc"),
            cni_bin_dir: Path::new("/cache/usr/lib/cni"),
            pause_image: "foundry-testbed/pause:1",
            ca_file: Path::new("/state/pki/ca.crt"),
            kubeconfig: Path::new("/state/kubeconfig"),
            kubelet_port: 1,
            kubelet_healthz_port: 2,
            proxy_healthz_port: 3,
            proxy_metrics_port: 4,
        };
        let containerd = containerd(&layout);
        assert!(containerd.contains("restrict_oom_score_adj = true"));
        assert!(containerd.contains("root = \"/state/node/containerd/root\""));
        assert!(containerd.contains("config_path = \"/state/node/containerd/certs.d\""));
        let hosts = registry_host("127.0.0.1:5000", Path::new("/state/registry/ca.crt"));
        assert!(
            hosts.contains("[host.\"https://127.0.0.1:5000\"]"),
            "{hosts}"
        );
        assert!(hosts.contains("ca = \"/state/registry/ca.crt\""), "{hosts}");
        let cni: serde_json::Value = serde_json::from_str(&cni(&layout)).unwrap();
        let plugin = &cni["plugins"][0];
        assert_eq!(plugin["ipMasq"], false);
        assert_eq!(plugin["ipam"]["routes"][0]["dst"], "10.96.0.0/16");
        assert_eq!(plugin["ipam"]["dataDir"], "/state/node/cni/ipam");
        let kubelet = kubelet(&layout);
        for line in [
            "failCgroupV1: false",
            "cgroupDriver: cgroupfs",
            "failSwapOn: false",
        ] {
            assert!(kubelet.contains(line), "{line}");
        }
        assert!(kube_proxy(&layout).contains("localhostNodePorts: false"));
    }
}
