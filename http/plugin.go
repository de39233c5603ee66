package http

import (
	"net/http"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// MaxModuleBody is the body cap of a plugin upload: modules up to 8 MiB are
// validated (larger ones get 422 with the reason); past this, 413.
const MaxModuleBody = 9 << 20

// bodyLimit is the body cap of a request.
func bodyLimit(r *http.Request) int64 {
	if r.Method == http.MethodPut && r.URL.Path == "/api/platform/plugin" {
		return MaxModuleBody
	}
	if r.Method == http.MethodPost && r.URL.Path == "/dashboard/plugin" {
		return MaxModuleBody + 64<<10 // the dashboard's upload form: the module and a few fields
	}
	return MaxBodyBytes
}

func (s *Server) getPlugin(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	o, err := s.eng.Plugins.Get(r.Context(), k.Tenant())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

func (s *Server) putPlugin(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/wasm") && !strings.HasPrefix(ct, "application/octet-stream") {
		return &engine.Error{Code: engine.EVALIDATION, Message: "Upload the module as Content-Type: application/wasm.",
			Fields: []engine.FieldError{{Field: "Content-Type", Message: "must be application/wasm"}}}
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	onError, err := query(r, "onError")
	if err != nil {
		return err
	}
	rsp := func(res any) (int, any) { return http.StatusCreated, res }
	idem, err := idempotency(w, r, body, rsp)
	if err != nil {
		return err
	}
	st, err := s.eng.Plugins.Upload(r.Context(), k.Tenant(), body, onError, idem)
	if err != nil {
		return err
	}
	reply(w, st, rsp)
	return nil
}

func (s *Server) rollbackPlugin(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	type rollback struct {
		Version string `json:"version" required:"true"`
	}
	return command(w, r, false, ok200, func(in rollback, idem *engine.Idempotency) (*engine.PluginStatus, error) {
		if in.Version == "" {
			return nil, &engine.Error{Code: engine.EVALIDATION, Message: "version is required.",
				Fields: []engine.FieldError{{Field: "version", Message: "is required"}}}
		}
		return s.eng.Plugins.Rollback(r.Context(), k.Tenant(), in.Version, idem)
	})
}

func (s *Server) deletePlugin(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	if err := s.eng.Plugins.Disable(r.Context(), k.Tenant()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": nil})
	return nil
}

func (s *Server) dryRunPlugin(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	version, err := query(r, "version")
	if err != nil {
		return err
	}
	// A dry run changes nothing: an Idempotency-Key is checked like
	// anywhere else, and no record is kept.
	if _, err := idempotencyKey(r); err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var in engine.DryRunInput
	if err := decode(body, &in, true); err != nil {
		return err
	}
	res, err := s.eng.Plugins.DryRun(r.Context(), k.Tenant(), version, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
