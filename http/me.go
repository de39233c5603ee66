package http

import (
	"net/http"

	"github.com/dream-api/dream-api/engine"
)

// The end-user endpoints: a platform's front end (browser or mobile app)
// calls them with the signed-in customer's session token, never with an
// API key: a Clerk session JWT when the server has Clerk, else dream-api's
// own access token (authn.go).

// endUserRoutes adds the end-user endpoints, CORS (their preflights and
// those of /api/tiers) and the platform's CORS config.
func (s *Server) endUserRoutes() {
	s.handle("GET", "/api/me", s.endUser(s.getMe))
	s.handle("GET", "/api/me/usage", s.endUser(s.getMeUsage))
	s.handle("POST", "/api/me/checkout", s.endUser(s.meCheckout))
	s.handle("OPTIONS", "/api/me", s.preflight("GET"))
	s.handle("OPTIONS", "/api/me/usage", s.preflight("GET"))
	s.handle("OPTIONS", "/api/me/checkout", s.preflight("POST"))
	s.handle("OPTIONS", "/api/tiers", s.preflight("GET"))
	s.handle("GET", "/api/platform/cors", s.secret(s.getCORS))
	s.handle("PUT", "/api/platform/cors", s.secret(s.putCORS))
}

// endUserHandler is a handler that runs as a signed-in customer.
type endUserHandler func(w http.ResponseWriter, r *http.Request, eu *engine.EndUser) error

// endUser authenticates a session token (Clerk's, or dream-api's own):
// its publishableKey claim picks the platform and mode. API keys are refused (403), and a session JWT is
// never accepted where a key is required (Keys.Authenticate refuses it).
func (s *Server) endUser(h endUserHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		eu, err := s.eng.AuthenticateEndUser(r.Context(), bearer(r))
		if err != nil {
			return err
		}
		noteCORSTenant(r, eu.Tenant)
		if err := s.eng.AllowRequest(eu.Tenant.PlatformID); err != nil { // the platform's requests-per-second quota
			return err
		}
		// Like the platform's live keys, its live end users pause while its
		// dream-api subscription is not active (stripe.go).
		if err := s.liveAllowed(r.Context(), eu.Tenant); err != nil {
			return err
		}
		return h(w, r, eu)
	}
}

// getMe answers the signed-in customer with its usage, like
// GET /api/customers/{id}.
func (s *Server) getMe(w http.ResponseWriter, r *http.Request, eu *engine.EndUser) error {
	c, err := s.eng.Meter.CustomerWithUsage(r.Context(), eu.Tenant, eu.Customer.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": c})
	return nil
}

// getMeUsage answers like GET /api/usage for the signed-in customer.
func (s *Server) getMeUsage(w http.ResponseWriter, r *http.Request, eu *engine.EndUser) error {
	u, err := s.eng.Meter.Usage(r.Context(), eu.Tenant, eu.Customer.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// meCheckout starts a Checkout for the signed-in customer.
func (s *Server) meCheckout(w http.ResponseWriter, r *http.Request, eu *engine.EndUser) error {
	return command(w, r, false, ok200, func(in engine.SessionCheckoutInput, idem *engine.Idempotency) (*engine.CheckoutResult, error) {
		if idem != nil {
			// Keys are the tenant's: one customer's key never replays another's.
			idem.Key = "me:" + eu.Customer.ID + ":" + idem.Key
		}
		return s.eng.SessionCheckout(r.Context(), eu, in, idem)
	})
}
