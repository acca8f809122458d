package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	committedV2 = "../../../gateway/openapi/skuflow.swagger.json"
	committedV3 = "../../../gateway/openapi/skuflow.openapi.yaml"
	fragment    = "../../../gateway/openapi/handwritten.swagger.json"
)

// The committed documents are what the tool makes of the generated
// document: taking the fragment's routes out of the committed Swagger
// document and merging again gives both committed files byte for byte,
// twice over.
func TestRebuildsTheCommittedDocuments(t *testing.T) {
	doc, err := readJSON(committedV2)
	if err != nil {
		t.Fatal(err)
	}
	frag, err := readJSON(fragment)
	if err != nil {
		t.Fatal(err)
	}
	paths := doc["paths"].(map[string]any)
	for p, ops := range frag["paths"].(map[string]any) {
		for m := range ops.(map[string]any) {
			delete(paths[p].(map[string]any), m)
		}
		if len(paths[p].(map[string]any)) == 0 {
			delete(paths, p)
		}
	}
	generated := filepath.Join(t.TempDir(), "generated.json")
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(generated, b, 0o644); err != nil {
		t.Fatal(err)
	}
	wantV2, err := os.ReadFile(committedV2)
	if err != nil {
		t.Fatal(err)
	}
	wantV3, err := os.ReadFile(committedV3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		dir := t.TempDir()
		v2, v3 := filepath.Join(dir, "v2.json"), filepath.Join(dir, "v3.yaml")
		if err := run(generated, fragment, v2, v3); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		for _, c := range []struct {
			path string
			want []byte
		}{{v2, wantV2}, {v3, wantV3}} {
			got, err := os.ReadFile(c.path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) {
				t.Errorf("run %d: %s differs from the committed document (run make proto)", i, filepath.Base(c.path))
			}
		}
	}
}

// A route both the generated document and the fragment define is refused,
// not silently replaced.
func TestMergeRefusesADuplicateRoute(t *testing.T) {
	dir := t.TempDir()
	err := run(committedV2, fragment, filepath.Join(dir, "v2.json"), filepath.Join(dir, "v3.yaml"))
	if err == nil || !strings.Contains(err.Error(), "POST /v1/merchants/{merchant}/feeds is in the generated document already") {
		t.Errorf("merging the fragment twice: %v, want a duplicate route error", err)
	}
}

func TestMergeRefusesOtherKeys(t *testing.T) {
	err := merge(map[string]any{}, map[string]any{"info": map[string]any{}})
	if err == nil || !strings.Contains(err.Error(), `"info"`) {
		t.Errorf("merge of an info key: %v, want an error naming it", err)
	}
}
