package http

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// openapiYAML is the contract this server implements; tests hold the
// router and the responses to it.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPIYAML returns the spec as written.
func OpenAPIYAML() []byte { return openapiYAML }

var openapiJSON = sync.OnceValues(func() ([]byte, error) { return yaml.YAMLToJSON(openapiYAML) })

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	b, err := openapiJSON()
	if err != nil {
		return err
	}
	var v json.RawMessage = b
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(v)
	return nil
}

func nowUTC() string { return time.Now().UTC().Format(time.RFC3339) }
