package http

import (
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// openAPISpecFromFile loads and validates openapi.yaml as it is on disk.
func openAPISpecFromFile(t *testing.T) *openapi3.T {
	t.Helper()
	data, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPISpecValidates(t *testing.T) {
	doc := openAPISpecFromFile(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if doc.Paths == nil || doc.Paths.Len() == 0 {
		t.Fatal("openapi.yaml has no paths")
	}
}

func TestOpenAPISpecOperations(t *testing.T) {
	doc := openAPISpecFromFile(t)
	seen := map[string]string{}
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		ops := item.Operations()
		if len(ops) == 0 {
			t.Errorf("%s: no operations", path)
		}
		for method, op := range ops {
			where := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", where)
			} else if prev, dup := seen[op.OperationID]; dup {
				t.Errorf("%s: operationId %q already used by %s", where, op.OperationID, prev)
			} else {
				seen[op.OperationID] = where
			}
			if op.Responses == nil || op.Responses.Len() == 0 {
				t.Errorf("%s: no responses", where)
			} else if op.Responses.Value("500") != nil && op.Responses.Value("503") == nil {
				// What can fail on the server can find the store unreachable.
				t.Errorf("%s: answers 500 but declares no 503 (unavailable: components/responses/Unavailable)", where)
			}
		}
	}
}
