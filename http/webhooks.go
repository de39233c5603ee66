package http

import (
	"net/http"

	"github.com/dream-api/dream-api/engine"
	"github.com/gorilla/mux"
)

// Outgoing webhook endpoints of the key's platform and mode.

func (s *Server) webhookRoutes() {
	s.handle("POST", "/api/platform/webhooks", s.secret(s.createWebhook))
	s.handle("GET", "/api/platform/webhooks", s.secret(s.listWebhooks))
	s.handle("GET", "/api/platform/webhooks/{id}", s.secret(s.getWebhook))
	s.handle("PATCH", "/api/platform/webhooks/{id}", s.secret(s.updateWebhook))
	s.handle("DELETE", "/api/platform/webhooks/{id}", s.secret(s.deleteWebhook))
	s.handle("POST", "/api/platform/webhooks/{id}/rotate-secret", s.secret(s.rotateWebhookSecret))
	s.handle("POST", "/api/platform/webhooks/{id}/test", s.secret(s.testWebhook))
	s.handle("GET", "/api/platform/webhooks/{id}/deliveries", s.secret(s.listWebhookDeliveries))
	s.handle("POST", "/api/platform/webhooks/{id}/deliveries/{eventId}/retry", s.secret(s.retryWebhookDelivery))
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, false, created201, func(in engine.CreateWebhookInput, idem *engine.Idempotency) (*engine.CreatedWebhook, error) {
		return s.eng.Webhooks.Create(r.Context(), k.Tenant(), in, sensitive(idem))
	})
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	eps, err := s.eng.Webhooks.List(r.Context(), k.Tenant())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[*engine.WebhookEndpoint]{Data: eps})
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	e, err := s.eng.Webhooks.Get(r.Context(), k.Tenant(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": e})
	return nil
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	rsp := func(res any) (int, any) { return http.StatusOK, map[string]any{"endpoint": res} }
	return command(w, r, false, rsp, func(in engine.UpdateWebhookInput, idem *engine.Idempotency) (*engine.WebhookEndpoint, error) {
		return s.eng.Webhooks.Update(r.Context(), k.Tenant(), mux.Vars(r)["id"], in, idem)
	})
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	id := mux.Vars(r)["id"]
	if err := s.eng.Webhooks.Delete(r.Context(), k.Tenant(), id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true, "id": id})
	return nil
}

// noBody is the input of a POST that takes no fields.
type noBody struct{}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, true, ok200, func(_ noBody, idem *engine.Idempotency) (*engine.CreatedWebhook, error) {
		return s.eng.Webhooks.RotateSecret(r.Context(), k.Tenant(), mux.Vars(r)["id"], sensitive(idem))
	})
}

func accepted202(res any) (int, any) { return http.StatusAccepted, res }

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, true, accepted202, func(_ noBody, idem *engine.Idempotency) (*engine.SentEvent, error) {
		return s.eng.Webhooks.Test(r.Context(), k.Tenant(), mux.Vars(r)["id"], idem)
	})
}

func (s *Server) listWebhookDeliveries(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ds, more, err := s.eng.Webhooks.Deliveries(r.Context(), k.Tenant(), mux.Vars(r)["id"], p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[*engine.WebhookDelivery]{Data: ds, HasMore: more})
	return nil
}

func (s *Server) retryWebhookDelivery(w http.ResponseWriter, r *http.Request, k *engine.Key) error {
	return command(w, r, true, accepted202, func(_ noBody, idem *engine.Idempotency) (*engine.SentEvent, error) {
		v := mux.Vars(r)
		return s.eng.Webhooks.Retry(r.Context(), k.Tenant(), v["id"], v["eventId"], idem)
	})
}
