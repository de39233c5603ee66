package http

import (
	"net/http"

	"github.com/dream-api/dream-api/engine"
)

// usageHistory is GET /api/usage/history: a customer's past periods, newest
// first. The customer is ?customerId= or, as for /api/usage, X-User-Id.
// Every query parameter is read as given (an empty one is a 422 naming it);
// the engine validates and filters (engine.Meter.History).
func (s *Server) usageHistory(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	var in engine.HistoryInput
	for _, p := range []struct {
		name string
		to   *string
	}{{"customerId", &in.CustomerID}, {"feature", &in.Feature}, {"from", &in.From}, {"to", &in.To}, {"limit", &in.Limit}} {
		v, err := query(r, p.name)
		if err != nil {
			return err
		}
		*p.to = v
	}
	if in.CustomerID == "" {
		in.CustomerID = r.Header.Get("X-User-Id")
	}
	h, err := s.eng.Meter.History(r.Context(), k.Tenant(), in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}
