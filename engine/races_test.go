package engine_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/plugins"
	"github.com/dream-api/dream-api/storage"
)

// These tests force the interleavings of write-path races that once let a
// revoked key authenticate again and left in-memory copies of stored state
// behind the store: a gate holds one unit of work at a chosen point while
// a competing one runs, then lets it go on. Each checks the outcome that
// the interleaving broke, in the running engine and after a restart.

// gateStore is a real store whose units of work and reads can be held at a
// gate. Reads through a unit of work (Tx) and through the store itself are
// both gated, so that a read is held wherever the engine makes it.
type gateStore struct {
	*storage.Store

	mu    sync.Mutex
	gates []*gate
}

// gate holds the first call that matches it until release is closed;
// reached is closed when that call arrives.
type gate struct {
	// at is "after-update" (an Update has returned, before its caller
	// goes on) or the name of a read method (held after it read).
	at      string
	lock    engine.LockKind // for after-update: a lock the unit holds
	reached chan struct{}
	release chan struct{}
	used    bool
}

func (g *gateStore) arm(at string, lock engine.LockKind) *gate {
	gt := &gate{at: at, lock: lock, reached: make(chan struct{}), release: make(chan struct{})}
	g.mu.Lock()
	g.gates = append(g.gates, gt)
	g.mu.Unlock()
	return gt
}

// pass holds the caller at the first unused gate that matches.
func (g *gateStore) pass(at string, locks []engine.Lock) {
	g.mu.Lock()
	var hit *gate
	for _, gt := range g.gates {
		if gt.used || gt.at != at {
			continue
		}
		if at == "after-update" && !slices.ContainsFunc(locks, func(l engine.Lock) bool { return l.Kind == gt.lock }) {
			continue
		}
		gt.used, hit = true, gt
		break
	}
	g.mu.Unlock()
	if hit != nil {
		close(hit.reached)
		<-hit.release
	}
}

func (g *gateStore) Update(ctx context.Context, locks []engine.Lock, fn func(engine.Tx) (any, error)) (any, error) {
	res, err := g.Store.Update(ctx, locks, func(tx engine.Tx) (any, error) { return fn(gateTx{Tx: tx, g: g}) })
	g.pass("after-update", locks)
	return res, err
}

// Key is held after it has read.
func (g *gateStore) Key(ctx context.Context, platformID, id string) (*engine.Key, error) {
	k, err := g.Store.Key(ctx, platformID, id)
	g.pass("Key", nil)
	return k, err
}

type gateTx struct {
	engine.Tx
	g *gateStore
}

func (t gateTx) Key(ctx context.Context, platformID, id string) (*engine.Key, error) {
	k, err := t.Tx.Key(ctx, platformID, id)
	t.g.pass("Key", nil)
	return k, err
}

// race runs first until it reaches gt, then second, which gets a moment to
// finish while first is held (it cannot when first holds a lock it needs:
// then it finishes after first), then lets first go on. It returns both
// errors.
func race(gt *gate, first, second func() error) (err1, err2 error) {
	done1, done2 := make(chan error, 1), make(chan error, 1)
	go func() { done1 <- first() }()
	<-gt.reached
	go func() { done2 <- second() }()
	select {
	case err2 = <-done2:
		close(gt.release)
		return <-done1, err2
	case <-time.After(300 * time.Millisecond):
		// second is waiting for a lock first holds: the race is decided
		// by the locks, which is what the fix is about.
	}
	close(gt.release)
	return <-done1, <-done2
}

type gateFixture struct {
	dir    string
	store  *gateStore
	eng    *engine.Engine
	live   engine.Tenant
	secret string
	loader engine.PolicyLoader
}

func newGateFixture(t *testing.T, loader engine.PolicyLoader) *gateFixture {
	t.Helper()
	f := &gateFixture{dir: t.TempDir(), loader: loader}
	f.open(t)
	np, err := f.eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Gate"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.live, f.secret = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}, np.SecretKey
	return f
}

func (f *gateFixture) open(t *testing.T) {
	t.Helper()
	st, err := storage.Open(f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.store = &gateStore{Store: st}
	f.eng = engine.New(engine.Config{Store: f.store, PolicyLoader: f.loader})
	t.Cleanup(func() { st.Close() })
}

// restart reopens the store with a new engine, as a restarted server would.
func (f *gateFixture) restart(t *testing.T) {
	t.Helper()
	if err := f.store.Store.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
}

func TestRotateRacingRevoke(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, nil)
	keys, err := f.eng.Keys.List(ctx, f.live)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	id := keys[0].ID

	// The rotation is held right after it read the key it rotates; the
	// revoke runs meanwhile.
	gt := f.store.arm("Key", 0)
	rotateErr, revokeErr := race(gt,
		func() error {
			_, err := f.eng.Keys.Create(ctx, f.live, engine.CreateKeyInput{Rotate: id}, nil)
			return err
		},
		func() error {
			_, err := f.eng.Keys.Revoke(ctx, f.live, id, nil)
			return err
		})
	if revokeErr != nil {
		t.Fatalf("revoke: %v", revokeErr)
	}
	if rotateErr != nil && engine.ErrorCode(rotateErr) != engine.EVALIDATION {
		t.Fatalf("rotate: %v", rotateErr)
	}
	check := func(when string) {
		t.Helper()
		if _, err := f.eng.Keys.Authenticate(ctx, f.secret); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
			t.Fatalf("%s: the revoked secret authenticates (err %v)", when, err)
		}
		k, err := f.store.Store.Key(ctx, f.live.PlatformID, id)
		if err != nil || k.RevokedAt == nil {
			t.Fatalf("%s: stored key %+v (%v): revokedAt lost", when, k, err)
		}
	}
	check("after the race")
	f.restart(t)
	check("after a restart")
}

func TestRevokeIsInTheCacheBeforeItReturns(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, nil)
	if _, err := f.eng.Keys.Authenticate(ctx, f.secret); err != nil {
		t.Fatal(err) // cached now
	}
	keys, _ := f.eng.Keys.List(ctx, f.live)
	// Held after its unit of work returned, before Revoke returns: the
	// cache must already refuse the secret.
	gt := f.store.arm("after-update", engine.LockKeys)
	done := make(chan error, 1)
	go func() {
		_, err := f.eng.Keys.Revoke(ctx, f.live, keys[0].ID, nil)
		done <- err
	}()
	<-gt.reached
	_, err := f.eng.Keys.Authenticate(ctx, f.secret)
	close(gt.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
		t.Fatalf("a key whose revoke is durable still authenticates (err %v)", err)
	}
}

func tiersWithLimit(n int64) engine.TierConfigInput {
	return engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: map[string]int64{"requests": n}}, {Name: "pro"}}}
}

func TestTierPutsRacing(t *testing.T) {
	ctx := context.Background()
	f := newGateFixture(t, nil)
	cus, err := f.eng.Customers.Create(ctx, f.live, "pk", engine.CreateCustomerInput{Email: "tiers@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first PUT is held after its config is stored; the second runs
	// to its end meanwhile and is stored last.
	gt := f.store.arm("after-update", engine.LockTiers)
	err1, err2 := race(gt,
		func() error { _, err := f.eng.Tiers.Put(ctx, f.live, tiersWithLimit(5), nil); return err },
		func() error { _, err := f.eng.Tiers.Put(ctx, f.live, tiersWithLimit(7), nil); return err })
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	enforced := func() int64 {
		t.Helper()
		r, err := f.eng.Meter.Check(ctx, f.live, engine.TrackInput{CustomerID: cus.ID}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Usage.Limit
	}
	stored, err := f.store.Store.Tiers(ctx, f.live)
	if err != nil {
		t.Fatal(err)
	}
	want := stored.Tiers[0].Limits["requests"]
	before := enforced()
	f.restart(t)
	after := enforced()
	if before != want || after != want {
		t.Fatalf("limit enforced %d before a restart and %d after; stored %d", before, after, want)
	}
}

func TestPluginUploadsRacing(t *testing.T) {
	ctx := context.Background()
	rt, err := plugins.New(ctx, &plugins.Options{Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	builtin, err := os.ReadFile("../testdata/plugins/builtin.wasm")
	if err != nil {
		t.Fatal(err)
	}
	allowAll, err := os.ReadFile("../testdata/plugins/allow_all.wasm")
	if err != nil {
		t.Fatal(err)
	}
	f := newGateFixture(t, rt.Loader())
	gt := f.store.arm("after-update", engine.LockPlugin)
	err1, err2 := race(gt,
		func() error { _, err := f.eng.Plugins.Upload(ctx, f.live, builtin, "", nil); return err },
		func() error { _, err := f.eng.Plugins.Upload(ctx, f.live, allowAll, "", nil); return err })
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	s, err := f.store.Store.PluginSettings(ctx, f.live)
	if err != nil {
		t.Fatal(err)
	}
	a := f.eng.Plugins.Active(f.live)
	if a == nil || a.Version != s.Active {
		t.Fatalf("active policy %v, stored settings say %s", a, s.Active)
	}
	if err := f.eng.Plugins.Disable(ctx, f.live); err != nil {
		t.Fatal(err)
	}
	if a := f.eng.Plugins.Active(f.live); a != nil {
		t.Fatalf("active policy %s after Disable", a.Version)
	}
}

// TestCachesFollowEveryStoredChange writes stored state through the store
// alone, past every engine service: the engine's in-memory copies follow,
// whoever wrote.
func TestCachesFollowEveryStoredChange(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng := engine.New(engine.Config{Store: st, Stripe: engine.StripeConfig{PlatformPriceID: "price_dream"}})
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Listener"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := np.Platform.ID
	if tc, _ := eng.Tiers.Get(ctx, engine.Tenant{PlatformID: pid}); tc.Tiers[0].Limits["requests"] != 100 {
		t.Fatalf("default tiers %+v", tc)
	}
	if err := eng.Stripe.LiveAllowed(ctx, pid); engine.ErrorCode(err) != engine.EFORBIDDEN {
		t.Fatalf("live keys of an unpaid platform: %v", err)
	}
	k, err := eng.Keys.Authenticate(ctx, np.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Update(ctx, nil, func(tx engine.Tx) (any, error) {
		in := tiersWithLimit(3)
		tc, _ := in.Validate()
		tx.PutTiers(engine.Tenant{PlatformID: pid}, tc)
		tx.PutPlatformBilling(&engine.PlatformBilling{PlatformID: pid, SubscriptionID: "sub_1", Status: "active"})
		revoked := *k
		now := time.Now().UTC()
		revoked.RevokedAt = &now
		tx.PutKey(&revoked)
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tc, _ := eng.Tiers.Get(ctx, engine.Tenant{PlatformID: pid}); tc.Tiers[0].Limits["requests"] != 3 {
		t.Fatalf("tier cache behind the store: %+v", tc.Tiers[0])
	}
	if err := eng.Stripe.LiveAllowed(ctx, pid); err != nil {
		t.Fatalf("paid flag behind the store: %v", err)
	}
	if _, err := eng.Keys.Authenticate(ctx, np.SecretKey); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
		t.Fatalf("key cache behind the store: %v", err)
	}
}

// TestCreateReplaysBeforeReadingState: a replay of a customer creation
// answers the first response even when the plan it named is gone.
func TestCreateReplaysBeforeReadingState(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	idem := func() *engine.Idempotency {
		return &engine.Idempotency{Key: "create-1", Render: func(res any) (int, []byte) { return 201, []byte(`{"first":true}`) }}
	}
	c, err := f.eng.Customers.Create(ctx, f.live, "pk", engine.CreateCustomerInput{Email: "once@example.com", Plan: "pro"}, idem())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Customers.Delete(ctx, f.live, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	only := engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free"}}}
	if _, err := f.eng.Tiers.Put(ctx, f.live, only, nil); err != nil {
		t.Fatal(err)
	}
	_, err = f.eng.Customers.Create(ctx, f.live, "pk", engine.CreateCustomerInput{Email: "once@example.com", Plan: "pro"}, idem())
	rec, ok := engine.AsReplayed(err)
	if !ok || string(rec.Body) != `{"first":true}` {
		t.Fatalf("replay answered %v, want the first response", err)
	}
}
