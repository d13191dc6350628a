// Command kstatus tells how the GitOps tools that read kstatus judge one Kubernetes object.
//
// It reads the object as JSON on stdin and prints one JSON line: the result of kstatus
// (sigs.k8s.io/cli-utils status.Compute, what Flux, Helm 4 --wait and kubectl-style waiters use
// for a kind they know nothing about) and, with -flux-exprs, the result of Flux's own evaluator of
// a Kustomization's spec.healthCheckExprs (github.com/fluxcd/pkg/runtime/cel) for the object's kind.
//
// The cluster tests of the chart run it against objects read back from the test bed's apiserver.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

// verdict is one tool's judgement of the object.
type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Error is set when the tool could not judge the object; Flux then reports it as Unknown and
	// polls again until its timeout.
	Error string `json:"error,omitempty"`
}

type output struct {
	Kstatus verdict  `json:"kstatus"`
	Flux    *verdict `json:"flux,omitempty"`
}

// fluxFile is the chart's health/flux file: the healthCheckExprs of a Kustomization spec.
type fluxFile struct {
	HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
}

func main() {
	fluxExprs := flag.String("flux-exprs", "", "YAML file with a healthCheckExprs list to evaluate as Flux does")
	flag.Parse()
	if err := run(*fluxExprs, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(fluxExprs string, in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	var object unstructured.Unstructured
	if err := object.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("parsing the object: %w", err)
	}

	var result output
	computed, err := status.Compute(&object)
	if err != nil {
		result.Kstatus = verdict{Status: status.UnknownStatus.String(), Error: err.Error()}
	} else {
		result.Kstatus = verdict{Status: computed.Status.String(), Message: computed.Message}
	}

	if fluxExprs != "" {
		judged, err := evaluateFlux(fluxExprs, &object)
		if err != nil {
			return err
		}
		result.Flux = judged
	}
	return json.NewEncoder(out).Encode(result)
}

// evaluateFlux judges the object with the expressions for its apiVersion and kind, the way
// kustomize-controller's status reader does: an evaluation error makes the status Unknown.
func evaluateFlux(path string, object *unstructured.Unstructured) (*verdict, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var file fluxFile
	if err := yaml.UnmarshalStrict(text, &file); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	for _, check := range file.HealthCheckExprs {
		if check.APIVersion != object.GetAPIVersion() || check.Kind != object.GetKind() {
			continue
		}
		evaluator, err := fluxcel.NewStatusEvaluator(&check.HealthCheckExpressions)
		if err != nil {
			return nil, fmt.Errorf("the expressions of %s %s: %w", check.APIVersion, check.Kind, err)
		}
		judged, err := evaluator.Evaluate(context.Background(), object)
		if err != nil {
			return &verdict{Status: status.UnknownStatus.String(), Error: err.Error()}, nil
		}
		return &verdict{Status: judged.Status.String(), Message: judged.Message}, nil
	}
	return nil, fmt.Errorf("%s has no healthCheckExprs for %s %s", path, object.GetAPIVersion(), object.GetKind())
}
