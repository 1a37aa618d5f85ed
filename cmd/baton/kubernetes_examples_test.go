package main

import (
	"path/filepath"
	"testing"
)

// The workflows of docs/deploy.md's "Functions on Kubernetes" are valid
// documents.
func TestKubernetesExamplesValidate(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "kubernetes", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("examples/kubernetes holds %d workflows, want the Knative, OpenFaaS and Fission ones", len(files))
	}
	res := baton(t, nil, append([]string{"validate"}, files...)...)
	res.expect(t, exitOK, "", "")
}
