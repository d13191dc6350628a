// Command argocd-health tells how Argo CD judges the health of Kubernetes objects.
//
// It reads the resource overrides from the argocd-cm ConfigMap of --namespace on the cluster of
// --kubeconfig with Argo CD's own settings manager (util/settings, which parses the
// resource.customizations.health.<group>_<kind> keys), then reads a JSON array of objects on stdin
// and prints a JSON array with one verdict per object, computed as Argo CD's application controller
// does: gitops-engine's health.GetResourceHealth with the overrides as util/lua's
// ResourceHealthOverrides, which runs a kind's health Lua in Argo CD's sandboxed gopher-lua.
//
// The cluster tests of the chart run it against the README's argocd-cm and objects read back from
// the test bed's apiserver.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v2/util/lua"
	"github.com/argoproj/argo-cd/v2/util/settings"
	"github.com/argoproj/gitops-engine/pkg/health"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// verdict is Argo CD's judgement of one object.
type verdict struct {
	// Status is empty when Argo CD has no health check for the object's kind.
	Status  string `json:"status"`
	Message string `json:"message"`
	// Error is set when the health check failed; Argo CD then reports the status Unknown.
	Error string `json:"error,omitempty"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster that holds argocd-cm")
	namespace := flag.String("namespace", "argocd", "namespace of argocd-cm")
	timeout := flag.Duration("timeout", time.Minute, "limit of the whole run")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "argocd-health: --kubeconfig is required")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, *kubeconfig, *namespace, os.Stdin, os.Stdout)
	// Stops the settings manager's informers.
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, namespace string, in io.Reader, out io.Writer) error {
	var raw []json.RawMessage
	if err := json.NewDecoder(in).Decode(&raw); err != nil {
		return fmt.Errorf("parsing the objects on stdin: %w", err)
	}
	// Decoded as client-go's dynamic client decodes what Argo CD's cluster cache watches
	// (integers as int64).
	objects := make([]*unstructured.Unstructured, 0, len(raw))
	for i, data := range raw {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return fmt.Errorf("parsing object %d on stdin: %w", i, err)
		}
		objects = append(objects, obj)
	}

	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading %s: %w", kubeconfig, err)
	}
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	overrides, err := resourceOverrides(ctx, clientset, namespace)
	if err != nil {
		return err
	}
	healthOverrides := lua.ResourceHealthOverrides(overrides)

	verdicts := make([]verdict, 0, len(objects))
	for _, obj := range objects {
		var judged verdict
		status, err := health.GetResourceHealth(obj, healthOverrides)
		if status != nil {
			judged.Status = string(status.Status)
			judged.Message = status.Message
		}
		if err != nil {
			judged.Error = err.Error()
		}
		verdicts = append(verdicts, judged)
	}
	return json.NewEncoder(out).Encode(verdicts)
}

// resourceOverrides reads the overrides as the application controller does. The settings manager
// syncs its ConfigMap and Secret informers on the first read; it gives up when ctx ends.
func resourceOverrides(ctx context.Context, clientset kubernetes.Interface, namespace string) (map[string]v1alpha1.ResourceOverride, error) {
	overrides, err := settings.NewSettingsManager(ctx, clientset, namespace).GetResourceOverrides()
	if err != nil {
		return nil, fmt.Errorf("reading the resource overrides of argocd-cm in namespace %s: %w", namespace, err)
	}
	return overrides, nil
}
