package engine_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/engine/identity"
	"github.com/dream-api/dream-api/engine/identity/clerkfake"
	"github.com/dream-api/dream-api/storage"
)

// clerkFixture is an engine whose customers are users of a fake Clerk,
// through the real adapter and SDK, on a real store, with a clock the test
// moves.
type clerkFixture struct {
	dir   string
	store *flakyStore
	eng   *engine.Engine
	fake  *clerkfake.Server
	clerk *identity.Clerk
	np    *engine.NewPlatform
	live  engine.Tenant
	test  engine.Tenant

	mu  sync.Mutex
	now time.Time
}

func newClerkFixture(t *testing.T) *clerkFixture {
	t.Helper()
	f := &clerkFixture{dir: t.TempDir(), fake: clerkfake.New(), now: time.Now()}
	t.Cleanup(f.fake.Close)
	c, err := identity.New(identity.Config{SecretKey: clerkfake.SecretKey, APIURL: f.fake.URL, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f.clerk = c
	f.open(t)
	np, err := f.eng.Platforms.Create(context.Background(), engine.CreatePlatformInput{Name: "Acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.np = np
	f.live = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	f.test = engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Test}
	return f
}

var quiet = slog.New(slog.DiscardHandler)

// open opens the store and an engine on it (again, after restart).
func (f *clerkFixture) open(t *testing.T) {
	t.Helper()
	st, err := storage.Open(f.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.store = &flakyStore{Store: st}
	t.Cleanup(func() { st.Close() })
	f.eng = engine.New(engine.Config{Store: f.store, Identity: f.clerk, Now: f.clock, Logger: quiet})
}

// restart closes the store and opens a new engine on it.
func (f *clerkFixture) restart(t *testing.T) {
	t.Helper()
	if err := f.store.Store.Close(); err != nil {
		t.Fatal(err)
	}
	f.open(t)
}

func (f *clerkFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *clerkFixture) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *clerkFixture) create(t *testing.T, in engine.CreateCustomerInput) *engine.Customer {
	t.Helper()
	c, err := f.eng.Customers.Create(context.Background(), f.live, f.np.PublishableKey, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// outbox returns the stored outbox entries.
func (f *clerkFixture) outbox(t *testing.T) []*engine.OutboxEntry {
	t.Helper()
	es, _, err := f.store.Outbox(context.Background(), engine.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// flakyStore is a store whose next batch Apply fails on demand, as if the
// write after a successful Clerk call failed.
type flakyStore struct {
	*storage.Store
	failApply atomic.Bool
}

func (s *flakyStore) NewBatch() engine.Batch { return &flakyBatch{Batch: s.Store.NewBatch(), s: s} }

// Update fails the unit of work after it has built its writes, so that
// none of them is applied.
func (s *flakyStore) Update(ctx context.Context, locks []engine.Lock, fn func(engine.Tx) (any, error)) (any, error) {
	return s.Store.Update(ctx, locks, func(tx engine.Tx) (any, error) {
		res, err := fn(tx)
		if err != nil {
			return nil, err
		}
		if s.failApply.CompareAndSwap(true, false) {
			return nil, errors.New("disk on fire")
		}
		return res, nil
	})
}

type flakyBatch struct {
	engine.Batch
	s *flakyStore
}

func (b *flakyBatch) Apply() error {
	if b.s.failApply.CompareAndSwap(true, false) {
		return errors.New("disk on fire")
	}
	return b.Batch.Apply()
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := engine.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want %s", what, err, got, code)
	}
}

func TestCreateMakesTheClerkUserFirst(t *testing.T) {
	f := newClerkFixture(t)
	c := f.create(t, engine.CreateCustomerInput{
		Email: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace", Password: "xK9mNp2qRs5vWz8a", Plan: "pro",
		Metadata: map[string]any{"team": "core"},
	})
	if !strings.HasPrefix(c.ID, "user_") || c.Email != "ada@example.com" || c.Plan != "pro" || c.PublishableKey != f.np.PublishableKey {
		t.Fatalf("customer %+v", c)
	}
	u, ok := f.fake.User(c.ID)
	if !ok {
		t.Fatal("no Clerk user with the customer's id")
	}
	if u.Email != "ada@example.com" || u.FirstName != "Ada" || u.LastName != "Lovelace" || !u.HasPassword ||
		u.PublicMetadata["publishableKey"] != f.np.PublishableKey || u.PublicMetadata["plan"] != "pro" || len(u.PublicMetadata) != 2 {
		t.Fatalf("Clerk user %+v", u)
	}
	got, err := f.eng.Customers.Get(context.Background(), f.live, c.ID)
	if err != nil || got.Email != c.Email {
		t.Fatalf("Get: %+v, %v", got, err)
	}
}

func TestCreateFailuresLeaveNothingOnEitherSide(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	pk := f.np.PublishableKey
	f.create(t, engine.CreateCustomerInput{Email: "taken@example.com"})
	creates := f.fake.Calls("POST /v1/users")

	// A duplicate email within the platform is refused before Clerk is called.
	_, err := f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{Email: "taken@example.com"}, nil)
	wantCode(t, "duplicate email", err, engine.ECONFLICT)
	if f.fake.Calls("POST /v1/users") != creates {
		t.Fatal("Clerk was called for a duplicate email")
	}

	// Clerk's 422 carries Clerk's message.
	_, err = f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{Email: "b@example.com", Password: clerkfake.BreachedPassword}, nil)
	wantCode(t, "breached password", err, engine.EVALIDATION)
	if !strings.Contains(engine.ErrorMessage(err), "Password has been found in an online data breach") {
		t.Errorf("message %q", engine.ErrorMessage(err))
	}

	// Clerk down or unreachable.
	for _, fail := range []clerkfake.Failure{clerkfake.Down, clerkfake.Unreachable} {
		f.fake.SetFailure(fail)
		_, err = f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{Email: "c@example.com"}, nil)
		wantCode(t, "Clerk failing", err, engine.EUPSTREAM)
		f.fake.SetFailure(clerkfake.Up)
	}

	// Clerk succeeds, our write fails: the Clerk user is deleted again.
	f.store.failApply.Store(true)
	_, err = f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{Email: "d@example.com"}, nil)
	if err == nil {
		t.Fatal("create with a failing store succeeded")
	}
	if f.fake.Calls("DELETE /v1/users/{id}") != 1 {
		t.Errorf("the Clerk user was not deleted after the failed write")
	}

	if n := f.fake.UserCount(); n != 1 {
		t.Errorf("%d Clerk users, want only the first customer's", n)
	}
	cs, _, err := f.eng.Customers.List(ctx, f.live, engine.Page{}, "")
	if err != nil || len(cs) != 1 {
		t.Errorf("%d customers (%v), want 1", len(cs), err)
	}
	if es := f.outbox(t); len(es) != 0 {
		t.Errorf("outbox %v, want empty", es)
	}
}

// When Clerk fails right after creating the user and our write failed, the
// user's deletion waits in the outbox until Clerk is back.
func TestOrphanedUserIsDeletedThroughTheOutbox(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	f.store.failApply.Store(true)
	f.fake.FailAfterNextCreate(clerkfake.Down)
	_, err := f.eng.Customers.Create(ctx, f.live, f.np.PublishableKey, engine.CreateCustomerInput{Email: "o@example.com"}, nil)
	if err == nil {
		t.Fatal("create with a failing store succeeded")
	}
	if f.fake.UserCount() != 1 {
		t.Fatalf("%d Clerk users, want the orphan", f.fake.UserCount())
	}
	es := f.outbox(t)
	if len(es) != 1 || es[0].Kind != engine.OutboxDeleteUser {
		t.Fatalf("outbox %+v, want one delete", es)
	}
	f.fake.SetFailure(clerkfake.Up)
	if _, _, err := f.eng.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if f.fake.UserCount() != 0 || len(f.outbox(t)) != 0 {
		t.Fatalf("orphan not deleted: %d users, outbox %v", f.fake.UserCount(), f.outbox(t))
	}
}

func TestCreateReplayDoesNotCallClerkAgain(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	idem := func() *engine.Idempotency {
		return &engine.Idempotency{Key: "k1", RequestHash: [32]byte{1}, Render: func(any) (int, []byte) { return 201, []byte(`{"first":true}`) }}
	}
	in := engine.CreateCustomerInput{Email: "i@example.com"}
	if _, err := f.eng.Customers.Create(ctx, f.live, f.np.PublishableKey, in, idem()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.eng.Customers.Create(ctx, f.live, f.np.PublishableKey, in, idem())
			if rec, ok := engine.AsReplayed(err); !ok || string(rec.Body) != `{"first":true}` {
				t.Errorf("retry: %v, want the first response", err)
			}
		}()
	}
	wg.Wait()
	if n := f.fake.Calls("POST /v1/users"); n != 1 {
		t.Errorf("Clerk create called %d times, want 1", n)
	}
}

func TestLinkExistingClerkUser(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	pk := f.np.PublishableKey
	id := f.fake.AddUser("Signed.Up@Example.com", map[string]any{"theirs": 1})
	c, err := f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{ClerkUserID: id, Plan: "pro", FirstName: "Sig"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || c.Email != "signed.up@example.com" || c.FirstName != "Sig" || c.Plan != "pro" {
		t.Fatalf("linked customer %+v", c)
	}
	u, _ := f.fake.User(id)
	if u.PublicMetadata["publishableKey"] != pk || u.PublicMetadata["plan"] != "pro" || u.PublicMetadata["theirs"] != float64(1) {
		t.Fatalf("Clerk metadata %v", u.PublicMetadata)
	}
	if f.fake.Calls("POST /v1/users") != 0 {
		t.Error("linking created a user")
	}

	_, err = f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{ClerkUserID: id}, nil)
	wantCode(t, "linking twice", err, engine.ECONFLICT)
	_, err = f.eng.Customers.Create(ctx, f.test, f.np.Test.PublishableKey, engine.CreateCustomerInput{ClerkUserID: id}, nil)
	wantCode(t, "linking a user of another publishable key", err, engine.ECONFLICT)
	_, err = f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{ClerkUserID: "user_nobody"}, nil)
	wantCode(t, "linking an unknown user", err, engine.EVALIDATION)
	_, err = f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{ClerkUserID: "cus_x"}, nil)
	wantCode(t, "linking a malformed id", err, engine.EVALIDATION)

	// Our write fails after the metadata was set: it is restored.
	other := f.fake.AddUser("other@example.com", map[string]any{"plan": "legacy"})
	f.store.failApply.Store(true)
	if _, err := f.eng.Customers.Create(ctx, f.live, pk, engine.CreateCustomerInput{ClerkUserID: other}, nil); err == nil {
		t.Fatal("link with a failing store succeeded")
	}
	u, _ = f.fake.User(other)
	if _, has := u.PublicMetadata["publishableKey"]; has || u.PublicMetadata["plan"] != "legacy" {
		t.Errorf("metadata after a failed link: %v", u.PublicMetadata)
	}
}

func TestClerkUserIDWithoutClerk(t *testing.T) {
	f := newFixture(t)
	_, err := f.eng.Customers.Create(context.Background(), f.live, "pk", engine.CreateCustomerInput{ClerkUserID: "user_abc"}, nil)
	wantCode(t, "clerkUserId without Clerk", err, engine.ECLERKNOTCONFIGURED)
	_, err = f.eng.AuthenticateSession(context.Background(), "eyJ.x.y")
	wantCode(t, "session without Clerk", err, engine.ECLERKNOTCONFIGURED)
	if n, _, err := f.eng.DeliverOutbox(context.Background()); n != 0 || err != nil {
		t.Errorf("DeliverOutbox without Clerk: %d, %v", n, err)
	}
}

// A plan change queues the sync in its own batch and never waits for Clerk;
// the outbox delivers it once Clerk is back, also after a restart.
func TestPlanSyncSurvivesOutageAndRestart(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	c := f.create(t, engine.CreateCustomerInput{Email: "p@example.com"})

	f.fake.SetFailure(clerkfake.Unreachable)
	pro := "pro"
	if _, err := f.eng.Customers.Update(ctx, f.live, c.ID, engine.UpdateCustomerInput{Plan: &pro}, nil); err != nil {
		t.Fatalf("plan change during a Clerk outage: %v", err)
	}
	es := f.outbox(t)
	if len(es) != 1 || es[0].Kind != engine.OutboxSyncPlan || es[0].CustomerID != c.ID {
		t.Fatalf("outbox %+v", es)
	}
	n, _, err := f.eng.DeliverOutbox(ctx)
	wantCode(t, "delivery during the outage", err, engine.EUPSTREAM)
	es = f.outbox(t)
	if n != 0 || len(es) != 1 || es[0].Attempts != 1 || !es[0].NextAttemptAt.After(f.clock()) || es[0].LastError == "" {
		t.Fatalf("after a failed delivery: %d settled, outbox %+v", n, es[0])
	}
	// Not due yet: nothing is tried.
	calls := f.fake.Calls("PATCH /v1/users/{id}/metadata")
	if n, next, err := f.eng.DeliverOutbox(ctx); n != 0 || err != nil || !next.Equal(es[0].NextAttemptAt) {
		t.Fatalf("early pass: %d, %v, %v", n, next, err)
	}
	if f.fake.Calls("PATCH /v1/users/{id}/metadata") != calls {
		t.Fatal("an entry that is not due was tried")
	}

	// Two more changes meanwhile; the restart; Clerk back.
	free := "free"
	for _, p := range []*string{&free, &pro} {
		if _, err := f.eng.Customers.Update(ctx, f.live, c.ID, engine.UpdateCustomerInput{Plan: p}, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.restart(t)
	f.fake.SetFailure(clerkfake.Up)
	f.advance(time.Hour)
	n, _, err = f.eng.DeliverOutbox(ctx)
	if err != nil || n != 3 {
		t.Fatalf("after recovery: %d settled, %v; want 3", n, err)
	}
	if got := f.fake.Calls("PATCH /v1/users/{id}/metadata") - calls; got != 1 {
		t.Errorf("%d metadata calls for one customer's three entries, want 1", got)
	}
	u, _ := f.fake.User(c.ID)
	if u.PublicMetadata["plan"] != "pro" || u.PublicMetadata["publishableKey"] != f.np.PublishableKey {
		t.Errorf("Clerk metadata %v", u.PublicMetadata)
	}
	if len(f.outbox(t)) != 0 {
		t.Error("outbox not empty")
	}
}

func TestRunOutboxRetriesWithBackoff(t *testing.T) {
	fx := newClerkFixture(t)
	// The worker runs on wall time: give the engine the real clock.
	eng := engine.New(engine.Config{Store: fx.store, Identity: fx.clerk, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		eng.RunOutbox(ctx, engine.OutboxOptions{MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Poll: time.Hour})
	}()
	defer func() { cancel(); <-done }()

	c, err := eng.Customers.Create(ctx, fx.live, fx.np.PublishableKey, engine.CreateCustomerInput{Email: "w@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fx.fake.SetFailure(clerkfake.Down)
	pro := "pro"
	if _, err := eng.Customers.Update(ctx, fx.live, c.ID, engine.UpdateCustomerInput{Plan: &pro}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failed attempts", func() bool { return fx.fake.Calls("PATCH /v1/users/{id}/metadata") >= 2 })
	fx.fake.SetFailure(clerkfake.Up)
	waitFor(t, "the plan in Clerk", func() bool {
		u, _ := fx.fake.User(c.ID)
		return u.PublicMetadata["plan"] == "pro"
	})
	waitFor(t, "an empty outbox", func() bool { return len(fx.outbox(t)) == 0 })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDeleteRemovesTheClerkUser(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	a := f.create(t, engine.CreateCustomerInput{Email: "a@example.com"})
	b := f.create(t, engine.CreateCustomerInput{Email: "b@example.com"})
	if err := f.eng.Customers.Delete(ctx, f.live, a.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.fake.User(a.ID); ok || len(f.outbox(t)) != 0 {
		t.Fatalf("Clerk user still there (outbox %v)", f.outbox(t))
	}
	// During an outage the delete succeeds and the user goes later.
	f.fake.SetFailure(clerkfake.Down)
	if err := f.eng.Customers.Delete(ctx, f.live, b.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.eng.Customers.Get(ctx, f.live, b.ID); engine.ErrorCode(err) != engine.ENOTFOUND {
		t.Fatalf("customer still there: %v", err)
	}
	f.fake.SetFailure(clerkfake.Up)
	f.advance(time.Hour)
	if _, _, err := f.eng.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.fake.User(b.ID); ok {
		t.Fatal("Clerk user not deleted after the outage")
	}
}

func TestLocalCustomersAreNotSynced(t *testing.T) {
	// A customer made before Clerk was configured keeps its cus_ id and has
	// no Clerk user: its plan changes queue nothing.
	f := newClerkFixture(t)
	ctx := context.Background()
	local := engine.New(engine.Config{Store: f.store, Logger: quiet})
	c, err := local.Customers.Create(ctx, f.live, f.np.PublishableKey, engine.CreateCustomerInput{Email: "l@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pro := "pro"
	if _, err := f.eng.Customers.Update(ctx, f.live, c.ID, engine.UpdateCustomerInput{Plan: &pro}, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Customers.Delete(ctx, f.live, c.ID, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.outbox(t)) != 0 {
		t.Errorf("outbox %v for a local customer", f.outbox(t))
	}
}

func TestAuthenticateSession(t *testing.T) {
	f := newClerkFixture(t)
	ctx := context.Background()
	c := f.create(t, engine.CreateCustomerInput{Email: "s@example.com"})
	other, err := f.eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Other"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	eu, err := f.eng.AuthenticateSession(ctx, f.fake.SessionToken(c.ID, f.np.PublishableKey))
	if err != nil {
		t.Fatal(err)
	}
	if eu.Tenant != f.live || eu.Customer.ID != c.ID || eu.Session.UserID != c.ID {
		t.Fatalf("end user %+v", eu)
	}

	tests := []struct {
		name, token, code string
	}{
		{"wrong mode", f.fake.SessionToken(c.ID, f.np.Test.PublishableKey), engine.EFORBIDDEN},
		{"another platform's key", f.fake.SessionToken(c.ID, other.PublishableKey), engine.EFORBIDDEN},
		{"unknown publishable key", f.fake.SessionToken(c.ID, "pk_live_nope"), engine.EINVALIDAPIKEY},
		{"no publishable key", f.fake.SessionToken(c.ID, ""), engine.EINVALIDAPIKEY},
		{"not a customer", f.fake.SessionToken(f.fake.AddUser("x@example.com", nil), f.np.PublishableKey), engine.EFORBIDDEN},
		{"a secret key", f.np.SecretKey, engine.EFORBIDDEN},
		{"a publishable key", f.np.PublishableKey, engine.EFORBIDDEN},
		{"empty", "", engine.EINVALIDAPIKEY},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.eng.AuthenticateSession(ctx, tc.token)
			wantCode(t, "AuthenticateSession", err, tc.code)
		})
	}

	// A session token is never a secret key.
	_, err = f.eng.Keys.Authenticate(ctx, f.fake.SessionToken(c.ID, f.np.PublishableKey))
	wantCode(t, "Keys.Authenticate(JWT)", err, engine.EINVALIDAPIKEY)
}

func TestCORSConfig(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	got, err := f.eng.Platforms.CORS(ctx, f.live.PlatformID)
	if err != nil || got.AllowedOrigins == nil || len(got.AllowedOrigins) != 0 {
		t.Fatalf("CORS of a new platform: %+v, %v", got, err)
	}
	_, err = f.eng.Platforms.SetCORS(ctx, f.live, engine.CORSConfig{AllowedOrigins: []string{"https://ok.example.com", "ftp://x", "https://a.com/path", "null"}}, nil)
	wantCode(t, "bad origins", err, engine.EVALIDATION)
	if n := len(err.(*engine.Error).Fields); n != 3 {
		t.Errorf("%d field errors, want 3", n)
	}

	set, err := f.eng.Platforms.SetCORS(ctx, f.live, engine.CORSConfig{AllowedOrigins: []string{
		"HTTPS://App.Example.com:443", "http://localhost:5173", "https://app.example.com/",
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://app.example.com", "http://localhost:5173"}; strings.Join(set.AllowedOrigins, ",") != strings.Join(want, ",") {
		t.Fatalf("normalized %v, want %v", set.AllowedOrigins, want)
	}
	check := func(origin string, platform, anywhere bool) {
		t.Helper()
		p, err1 := f.eng.Platforms.OriginAllowed(ctx, f.live.PlatformID, origin)
		a, err2 := f.eng.Platforms.OriginAllowedAnywhere(ctx, origin)
		if err1 != nil || err2 != nil || p != platform || a != anywhere {
			t.Errorf("%s: allowed %v (%v), anywhere %v (%v); want %v, %v", origin, p, err1, a, err2, platform, anywhere)
		}
	}
	check("https://app.example.com", true, true)
	check("http://localhost:5173", true, true)
	check("http://localhost:5174", false, false)
	check("https://evil.example.com", false, false)

	// Replacing drops the old origins from the index.
	if _, err := f.eng.Platforms.SetCORS(ctx, f.live, engine.CORSConfig{AllowedOrigins: []string{"http://localhost:5173"}}, nil); err != nil {
		t.Fatal(err)
	}
	check("https://app.example.com", false, false)
	check("http://localhost:5173", true, true)
	if _, err := f.eng.Platforms.SetCORS(ctx, f.live, engine.CORSConfig{AllowedOrigins: []string{"*"}}, nil); err != nil {
		t.Fatal(err)
	}
	check("https://anything.example.com", true, true)
}
