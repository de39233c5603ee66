package postgres_test

import (
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage/postgres/pgtest"
)

// A platform suspended on node A is refused by node B, whose key cache
// already held the platform's keys (the change reaches it through the
// change log, not a restart), with the secret and the publishable key; a
// resume on A lets B serve them again.
func TestSuspendAcrossNodes(t *testing.T) {
	url := pgtest.Database(t)
	a, b := newNode(t, "A", url, nil), newNode(t, "B", url, nil)
	np, err := a.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := np.Platform.ID
	// B authenticates first: its cache knows the key and the platform.
	if _, err := b.eng.Keys.Authenticate(ctx, np.SecretKey); err != nil {
		t.Fatalf("B before the suspension: %v", err)
	}
	if _, err := a.eng.Platforms.Suspend(ctx, pid, engine.SuspendInput{Reason: "abuse"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.eng.Keys.Authenticate(ctx, np.SecretKey); engine.ErrorCode(err) != engine.EFORBIDDEN {
		t.Fatalf("A right after Suspend: %v, want %s", err, engine.EFORBIDDEN)
	}
	eventually(t, "B refuses the suspended platform's secret key", func() bool {
		_, err := b.eng.Keys.Authenticate(ctx, np.SecretKey)
		return engine.ErrorCode(err) == engine.EFORBIDDEN
	})
	if _, err := b.eng.Keys.AuthenticatePublishable(ctx, np.Test.PublishableKey); engine.ErrorCode(err) != engine.EFORBIDDEN {
		t.Errorf("B with the test publishable key: %v, want %s", err, engine.EFORBIDDEN)
	}
	if _, err := a.eng.Platforms.Resume(ctx, pid, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B serves the resumed platform", func() bool {
		_, err := b.eng.Keys.Authenticate(ctx, np.SecretKey)
		return err == nil
	})
}
