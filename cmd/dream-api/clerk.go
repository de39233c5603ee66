package main

import (
	"context"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/engine/identity"
)

// Clerk: the platforms' customers are users of one shared end-user Clerk
// application (the seed's "end-user-api" app), configured by
//
//	CLERK_SECRET_KEY  its secret key; without it customers are local (cus_…)
//	CLERK_API_URL     Clerk's Backend API (default https://api.clerk.com/v1);
//	                  tests point it at a fake
//	CLERK_ISSUER      optional: the only `iss` session tokens may carry (the
//	                  application's Frontend API URL); by default Clerk's own
//	                  issuer check (https://clerk.… or ….clerk.accounts.dev)

// startClerk wires Clerk into eng when CLERK_SECRET_KEY is set, and runs
// the outbox worker that delivers plan changes and deletions to Clerk
// until bg is done; Close waits for it (m.stopBg cancels bg, then waits).
// Call it after m.stopBg is set and before serving.
func (m *Main) startClerk(bg context.Context, eng *engine.Engine) error {
	key := m.Getenv("CLERK_SECRET_KEY")
	if key == "" {
		m.log.Info("Clerk is not configured (no CLERK_SECRET_KEY): customers are local")
		return nil
	}
	c, err := identity.New(identity.Config{
		SecretKey: key,
		APIURL:    m.Getenv("CLERK_API_URL"),
		Issuer:    m.Getenv("CLERK_ISSUER"),
		Logger:    m.log.With("component", "clerk"),
	})
	if err != nil {
		return err
	}
	eng.UseIdentity(c)

	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.RunOutbox(bg, engine.OutboxOptions{})
	}()
	cancel := m.stopBg
	m.stopBg = func() { cancel(); <-done }
	apiURL := m.Getenv("CLERK_API_URL")
	if apiURL == "" {
		apiURL = "https://api.clerk.com/v1"
	}
	m.log.Info("Clerk configured: customers are users of the end-user Clerk app", "apiUrl", apiURL)
	return nil
}
