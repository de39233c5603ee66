package engine_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/storage"
)

// cheapArgon2 keeps tests fast; the parameters are stored with the hash.
var cheapArgon2 = engine.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

func newDevEngine(t *testing.T, now *time.Time) *engine.Engine {
	t.Helper()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return engine.New(engine.Config{Store: st, Now: func() time.Time { return *now },
		Developers: engine.DeveloperConfig{Argon2: cheapArgon2, SessionIdle: time.Hour, SessionAbsolute: 24 * time.Hour}})
}

func TestSignupSignInSignOut(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	eng := newDevEngine(t, &now)
	nd, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "Ada@Example.com", Password: "correct horse", PlatformName: "Acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if nd.Platform.SecretKey == "" || nd.Platform.Test.SecretKey == "" || !nd.Developer.Owns(nd.Platform.Platform.ID) {
		t.Fatalf("signup = %+v", nd)
	}
	if _, err := eng.Keys.Authenticate(ctx, nd.Platform.Test.SecretKey); err != nil {
		t.Fatalf("the test secret from signup does not authenticate: %v", err)
	}
	if _, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "ada@example.com", Password: "another one!", PlatformName: "B"}, nil); engine.ErrorCode(err) != engine.ECONFLICT {
		t.Fatalf("second signup with the same email: %v, want conflict", err)
	}
	if _, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "x", Password: "short"}, nil); engine.ErrorCode(err) != engine.EVALIDATION {
		t.Fatalf("bad signup: %v", err)
	}

	token, sess, err := eng.Developers.SignIn(ctx, engine.SignInInput{Email: "ada@example.COM", Password: "correct horse", IP: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if sess.PlatformID != nd.Platform.Platform.ID || sess.CSRFToken == "" {
		t.Fatalf("session = %+v", sess)
	}
	if _, _, err := eng.Developers.Authenticate(ctx, token); err != nil {
		t.Fatal(err)
	}
	// Stored as a hash only: the token is not a key of the store.
	if _, _, err := eng.Developers.Authenticate(ctx, token+"x"); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
		t.Fatalf("wrong token: %v", err)
	}
	if err := eng.Developers.SignOut(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.Developers.Authenticate(ctx, token); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
		t.Fatalf("after sign-out: %v", err)
	}

	// Idle and absolute expiry follow the engine clock.
	token, _, _ = eng.Developers.SignIn(ctx, engine.SignInInput{Email: "ada@example.com", Password: "correct horse", IP: "1"})
	now = now.Add(59 * time.Minute)
	if _, _, err := eng.Developers.Authenticate(ctx, token); err != nil {
		t.Fatalf("59 minutes idle: %v", err)
	}
	now = now.Add(61 * time.Minute)
	if _, _, err := eng.Developers.Authenticate(ctx, token); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
		t.Fatalf("61 minutes idle: %v", err)
	}
	token, _, _ = eng.Developers.SignIn(ctx, engine.SignInInput{Email: "ada@example.com", Password: "correct horse", IP: "1"})
	for i := 0; i < 40; i++ {
		now = now.Add(50 * time.Minute)
		if _, _, err := eng.Developers.Authenticate(ctx, token); err != nil {
			break
		}
		if i == 39 {
			t.Fatal("a session used every 50 minutes outlived the absolute expiry")
		}
	}

	// Sign out everywhere ends every session.
	t1, _, _ := eng.Developers.SignIn(ctx, engine.SignInInput{Email: "ada@example.com", Password: "correct horse", IP: "1"})
	t2, _, _ := eng.Developers.SignIn(ctx, engine.SignInInput{Email: "ada@example.com", Password: "correct horse", IP: "2"})
	if err := eng.Developers.SignOutEverywhere(ctx, nd.Developer.ID); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{t1, t2} {
		if _, _, err := eng.Developers.Authenticate(ctx, tok); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
			t.Fatalf("after sign-out everywhere: %v", err)
		}
	}
}

func TestSignInThrottled(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	eng := newDevEngine(t, &now)
	if _, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "ada@example.com", Password: "correct horse", PlatformName: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	signIn := func(email, password, ip string) string {
		_, _, err := eng.Developers.SignIn(ctx, engine.SignInInput{Email: email, Password: password, IP: ip})
		return engine.ErrorCode(err)
	}
	// An unknown email and a wrong password fail alike.
	if a, b := signIn("nobody@example.com", "whatever!!", "9"), signIn("ada@example.com", "whatever!!", "9"); a != b || a != engine.EINVALIDAPIKEY {
		t.Fatalf("unknown email %q, wrong password %q", a, b)
	}
	for i := 0; i < 4; i++ {
		signIn("ada@example.com", "wrong password", "1.2.3."+string(rune('a'+i)))
	}
	// Five failures for the account: even the right password waits.
	if got := signIn("ada@example.com", "correct horse", "5.5.5.5"); got != engine.ERATELIMITED {
		t.Fatalf("after 5 failures: %q, want rate_limited", got)
	}
	// Throttling an unknown account looks the same.
	for i := 0; i < 5; i++ {
		signIn("ghost@example.com", "wrong password", "7.7.7."+string(rune('a'+i)))
	}
	if got := signIn("ghost@example.com", "wrong password", "8.8.8.8"); got != engine.ERATELIMITED {
		t.Fatalf("unknown account after 5 failures: %q", got)
	}
	now = now.Add(16 * time.Minute)
	if got := signIn("ada@example.com", "correct horse", "5.5.5.5"); got != "" {
		t.Fatalf("after the window: %q", got)
	}
	// Per IP: 20 failures across accounts.
	for i := 0; i < 20; i++ {
		signIn("user"+string(rune('a'+i))+"@example.com", "wrong password", "6.6.6.6")
	}
	if got := signIn("ada@example.com", "correct horse", "6.6.6.6"); got != engine.ERATELIMITED {
		t.Fatalf("after 20 failures from one IP: %q", got)
	}
}

func TestUsageDaysRollUpTracks(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 23, 59, 0, 0, time.UTC)
	eng := newDevEngine(t, &now)
	nd, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "ada@example.com", Password: "correct horse", PlatformName: "Acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ten := engine.Tenant{PlatformID: nd.Platform.Platform.ID, Mode: engine.Test}
	if _, err := eng.Tiers.Put(ctx, ten, engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", Limits: map[string]int64{"requests": 2, "exports": 5}}}}, nil); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range []string{"a@example.com", "b@example.com"} {
		c, err := eng.Customers.Create(ctx, ten, "pk", engine.CreateCustomerInput{Email: e}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	track := func(id, feature string) {
		t.Helper()
		if _, err := eng.Meter.Track(ctx, ten, engine.TrackInput{CustomerID: id, Feature: feature}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ { // the third is denied
		track(ids[0], "requests")
	}
	track(ids[1], "requests")
	track(ids[1], "exports")
	if _, err := eng.Meter.Check(ctx, ten, engine.TrackInput{CustomerID: ids[1]}, nil); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // the next day
	track(ids[1], "requests")
	got, err := eng.Customers.UsageDays(ctx, ten, now.AddDate(0, 0, -1), now)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.DayUsage{
		{Date: "2026-12-01", Feature: "exports", Count: 1},
		{Date: "2026-12-01", Feature: "requests", Count: 3, Denied: 1},
		{Date: "2026-12-02", Feature: "requests", Count: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("days = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("day %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// The other mode sees none of it.
	if live, _ := eng.Customers.UsageDays(ctx, engine.Tenant{PlatformID: ten.PlatformID, Mode: engine.Live}, now.AddDate(0, 0, -1), now); len(live) != 0 {
		t.Errorf("live days: %+v", live)
	}
}

func TestSignupThrottledPerAddress(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	eng := newDevEngine(t, &now)
	signup := func(i int, ip string) string {
		_, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: fmt.Sprintf("u%d@example.com", i), Password: "correct horse", PlatformName: "P", IP: ip}, nil)
		return engine.ErrorCode(err)
	}
	for i := 0; i < 10; i++ {
		if got := signup(i, "1.1.1.1"); got != "" {
			t.Fatalf("signup %d: %s", i, got)
		}
	}
	if got := signup(10, "1.1.1.1"); got != engine.ERATELIMITED {
		t.Fatalf("11th signup from one address: %q", got)
	}
	if got := signup(11, "2.2.2.2"); got != "" {
		t.Fatalf("another address: %q", got)
	}
	if got := signup(12, ""); got != "" {
		t.Fatalf("the operator: %q", got)
	}
	now = now.Add(16 * time.Minute)
	if got := signup(13, "1.1.1.1"); got != "" {
		t.Fatalf("after the window: %q", got)
	}
}

func TestExpireSessions(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	eng := newDevEngine(t, &now) // idle 1 h
	if _, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "ada@example.com", Password: "correct horse", PlatformName: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	in := engine.SignInInput{Email: "ada@example.com", Password: "correct horse", IP: "1"}
	old, _, _ := eng.Developers.SignIn(ctx, in)
	now = now.Add(50 * time.Minute)
	fresh, _, _ := eng.Developers.SignIn(ctx, in)
	now = now.Add(20 * time.Minute) // old: 70 minutes idle; fresh: 20
	if n, err := eng.Developers.ExpireSessions(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireSessions = %d, %v; want 1", n, err)
	}
	if _, _, err := eng.Developers.Authenticate(ctx, fresh); err != nil {
		t.Errorf("the fresh session was expired: %v", err)
	}
	if _, _, err := eng.Developers.Authenticate(ctx, old); engine.ErrorCode(err) != engine.EINVALIDAPIKEY {
		t.Errorf("the idle session: %v", err)
	}
	if n, _ := eng.Developers.ExpireSessions(ctx); n != 0 {
		t.Errorf("a second sweep found %d", n)
	}
}

func TestChangePasswordThrottled(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	eng := newDevEngine(t, &now)
	nd, err := eng.Developers.Signup(ctx, engine.SignupInput{Email: "ada@example.com", Password: "correct horse", PlatformName: "Acme"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := nd.Developer.ID
	for i := 0; i < 5; i++ {
		if err := eng.Developers.ChangePassword(ctx, id, "wrong guess!", "new password!"); engine.ErrorCode(err) != engine.EVALIDATION {
			t.Fatalf("wrong current password %d: %v", i, err)
		}
	}
	if err := eng.Developers.ChangePassword(ctx, id, "correct horse", "new password!"); engine.ErrorCode(err) != engine.ERATELIMITED {
		t.Fatalf("after 5 wrong: %v", err)
	}
	now = now.Add(16 * time.Minute)
	if err := eng.Developers.ChangePassword(ctx, id, "correct horse", "new password!"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.Developers.SignIn(ctx, engine.SignInInput{Email: "ada@example.com", Password: "new password!", IP: "1"}); err != nil {
		t.Fatalf("sign-in with the new password: %v", err)
	}
}

// TestUsageDaysFlushed: a track counts its day in memory and writes nothing
// for it; FlushUsageDays adds the counts to the stored rollups once (a
// second flush adds nothing again), and a new engine on the store sees
// them.
func TestUsageDaysFlushed(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	st, err := storage.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.Config{Store: st, Now: func() time.Time { return now }})
	np, err := eng.Platforms.Create(ctx, engine.CreatePlatformInput{Name: "Days"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ten := engine.Tenant{PlatformID: np.Platform.ID, Mode: engine.Live}
	c, err := eng.Customers.Create(ctx, ten, "pk", engine.CreateCustomerInput{Email: "d@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := func(s *storage.Store) (n int64) {
		t.Helper()
		err := s.UsageDays(ctx, ten, "2026-12-01", "2026-12-01", func(_ engine.DayKey, c engine.DayCount) error {
			n += c.Count
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := 0; i < 5; i++ {
		if _, err := eng.Meter.Track(ctx, ten, engine.TrackInput{CustomerID: c.ID}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := stored(st); n != 0 {
		t.Fatalf("a track wrote its day's rollup (%d) before a flush", n)
	}
	if days, _ := eng.Customers.UsageDays(ctx, ten, now, now); len(days) != 1 || days[0].Count != 5 {
		t.Fatalf("before a flush the engine sees %+v, want 5 tracks", days)
	}
	for i := 0; i < 2; i++ {
		if err := eng.FlushUsageDays(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := stored(st); n != 5 {
		t.Fatalf("stored after two flushes: %d, want 5", n)
	}
	if days, _ := eng.Customers.UsageDays(ctx, ten, now, now); len(days) != 1 || days[0].Count != 5 {
		t.Fatalf("after a flush the engine sees %+v, want 5 (not counted twice)", days)
	}
	if _, err := eng.Meter.Track(ctx, ten, engine.TrackInput{CustomerID: c.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if err := eng.FlushUsageDays(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = storage.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng = engine.New(engine.Config{Store: st, Now: func() time.Time { return now }})
	if days, _ := eng.Customers.UsageDays(ctx, ten, now, now); len(days) != 1 || days[0].Count != 6 {
		t.Fatalf("after a restart: %+v, want 6", days)
	}
}
