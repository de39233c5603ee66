package dashboard_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/engine"
	"github.com/dream-api/dream-api/http/dashboard"
	"github.com/dream-api/dream-api/storage"
)

type site struct {
	eng *engine.Engine
	srv *httptest.Server
}

func newSite(t *testing.T, publicURL string) *site {
	t.Helper()
	st, err := storage.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng := engine.New(engine.Config{Store: st, Developers: engine.DeveloperConfig{Argon2: engine.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}},
		Auth: engine.AuthConfig{Enabled: true, Argon2: engine.PasswordParams{Algorithm: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}}})
	srv := httptest.NewServer(dashboard.New(dashboard.Config{Engine: eng, PublicURL: publicURL}))
	t.Cleanup(srv.Close)
	return &site{eng: eng, srv: srv}
}

// browser is a client with its own cookies that does not follow redirects.
type browser struct {
	t    *testing.T
	s    *site
	c    *http.Client
	csrf string
}

func (s *site) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, s: s, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	res, err := b.c.Get(b.s.srv.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if m := csrfRe.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return res.StatusCode, string(body)
}

// post sends a same-origin form (as a browser would: Sec-Fetch-Site
// same-origin), with the page's CSRF token unless form has one.
func (b *browser) post(path string, form url.Values, header map[string]string) *http.Response {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest("POST", b.s.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func (b *browser) signup(email, name string) {
	b.t.Helper()
	res := b.post("/dashboard/signup", url.Values{"email": {email}, "password": {"correct horse battery"}, "name": {name}}, nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/credentials" {
		b.t.Fatalf("signup: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func (b *browser) platformID() string {
	b.t.Helper()
	_, body := b.get("/dashboard/credentials")
	m := regexp.MustCompile(`plt_[0-9a-z]+`).FindString(body)
	if m == "" {
		b.t.Fatal("no platform id on the credentials page")
	}
	return m
}

func TestSignupShowsSecretsOnceAndSetsCookieFlags(t *testing.T) {
	s := newSite(t, "https://dream.example")
	b := s.browser(t)
	res := b.post("/dashboard/signup", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}, "name": {"Acme"}}, nil)
	cookie := res.Header.Get("Set-Cookie")
	for _, want := range []string{"dream_session=", "HttpOnly", "SameSite=Lax", "Secure", "Path=/dashboard"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("Set-Cookie %q lacks %s", cookie, want)
		}
	}
	// httptest serves http: the jar would not send a Secure cookie back.
	u, _ := url.Parse(s.srv.URL)
	for _, c := range res.Cookies() {
		c.Secure = false
		b.c.Jar.SetCookies(u, []*http.Cookie{c})
	}
	_, body := b.get("/dashboard/credentials")
	for _, want := range []string{"sk_test_", "sk_live_", "pk_test_", "pk_live_", "Store your secret keys now"} {
		if !strings.Contains(body, want) {
			t.Errorf("credentials page lacks %s", want)
		}
	}
	_, again := b.get("/dashboard/credentials")
	if regexp.MustCompile(`sk_(live|test)_[0-9a-f]{20,}`).MatchString(again) {
		t.Error("a secret key is shown a second time")
	}
	if h := res.Header.Get("Content-Security-Policy"); !strings.Contains(h, "script-src 'self'") {
		t.Errorf("CSP %q", h)
	}
}

func TestCrossSiteAndTokenlessPostsChangeNothing(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	pid := b.platformID()
	ten := engine.Tenant{PlatformID: pid, Mode: engine.Test}
	b.get("/dashboard/tiers")
	form := url.Values{"rows": {"1"}, "tiers.0.name": {"hacked"}, "tiers.0.price": {"1"}}
	for _, tc := range []struct {
		name   string
		form   url.Values
		header map[string]string
	}{
		{"another site", form, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"another port of the same host", form, map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}},
		{"no token", url.Values{"csrf": {""}, "rows": {"1"}, "tiers.0.name": {"hacked"}}, nil},
		{"wrong token", url.Values{"csrf": {"00ff"}, "rows": {"1"}, "tiers.0.name": {"hacked"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := b.post("/dashboard/tiers", tc.form, tc.header)
			if res.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", res.StatusCode)
			}
			tc2, _ := s.eng.Tiers.ForTenant(context.Background(), ten)
			if tc2.Tier("hacked") != nil {
				t.Fatal("the tiers changed")
			}
		})
	}
	// The same form, same origin with the token, does change them.
	if res := b.post("/dashboard/tiers", form, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("same-origin save: %d", res.StatusCode)
	}
}

func TestDeveloperCannotReachAnotherPlatform(t *testing.T) {
	s := newSite(t, "")
	a, bob := s.browser(t), s.browser(t)
	a.signup("ada@example.com", "A")
	bob.signup("bob@example.com", "B")
	pidB := bob.platformID()
	tb := engine.Tenant{PlatformID: pidB, Mode: engine.Test}
	cus, err := s.eng.Customers.Create(context.Background(), tb, "pk", engine.CreateCustomerInput{Email: "victim@example.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.get("/dashboard")
	if code, body := a.get("/dashboard/customers/" + cus.ID); code != http.StatusNotFound || strings.Contains(body, "victim@") {
		t.Errorf("A sees B's customer: %d", code)
	}
	if code, _ := a.get("/dashboard/customers/" + cus.ID + "/delete"); code != http.StatusNotFound {
		t.Errorf("delete confirmation of B's customer: %d", code)
	}
	if res := a.post("/dashboard/customers/"+cus.ID+"/delete", nil, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("A deleting B's customer: %d", res.StatusCode)
	}
	if res := a.post("/dashboard/customers/"+cus.ID+"/plan", url.Values{"plan": {"pro"}}, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("A changing B's customer's plan: %d", res.StatusCode)
	}
	if res := a.post("/dashboard/switch", url.Values{"platform": {pidB}, "mode": {"test"}}, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("A switching to B's platform: %d", res.StatusCode)
	}
	if _, body := a.get("/dashboard/customers?q=victim@example.com"); strings.Contains(body, cus.ID) {
		t.Error("A's search finds B's customer")
	}
	c, err := s.eng.Customers.Get(context.Background(), tb, cus.ID)
	if err != nil || c.Plan != "free" {
		t.Fatalf("B's customer changed: %v %+v", err, c)
	}
	keys, _ := s.eng.Keys.List(context.Background(), tb)
	if res := a.post("/dashboard/keys/"+keys[0].ID+"/revoke", nil, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("A revoking B's key: %d", res.StatusCode)
	}
	keys, _ = s.eng.Keys.List(context.Background(), tb)
	if keys[0].RevokedAt != nil {
		t.Fatal("B's key was revoked by A")
	}
}

func TestXSSPayloadsRenderInert(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "<script>alert('p')</script>")
	pid := b.platformID()
	ten := engine.Tenant{PlatformID: pid, Mode: engine.Test}
	payload := `<script>alert(1)</script>`
	cus, err := s.eng.Customers.Create(context.Background(), ten, "pk", engine.CreateCustomerInput{Email: "x@example.com", FirstName: payload, LastName: `"><img src=x onerror=alert(2)>`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.eng.Tiers.Put(context.Background(), ten, engine.TierConfigInput{Tiers: []engine.TierInput{{Name: "free", DisplayName: `<img src=x onerror=alert(3)>`}}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dashboard", "/dashboard/customers", "/dashboard/customers/" + cus.ID, "/dashboard/tiers", "/dashboard/credentials", "/dashboard/customers?q=" + url.QueryEscape(payload)} {
		code, body := b.get(path)
		if code != 200 {
			t.Errorf("%s: %d", path, code)
		}
		for _, raw := range []string{"<script>alert", "<img src=x"} {
			if strings.Contains(body, raw) {
				t.Errorf("%s renders %q unescaped", path, raw)
			}
		}
	}
	if _, body := b.get("/dashboard/customers/" + cus.ID); !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the customer's name is not shown as text")
	}
}

func TestLogoutEndsSessionServerSide(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	u, _ := url.Parse(s.srv.URL + "/dashboard")
	old := b.c.Jar.Cookies(u)
	if code, _ := b.get("/dashboard"); code != 200 {
		t.Fatalf("signed in: %d", code)
	}
	if res := b.post("/dashboard/logout", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	// The old cookie, replayed, is no longer a session.
	replay := s.browser(t)
	replay.c.Jar.SetCookies(u, old)
	res, err := replay.c.Get(s.srv.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/login" {
		t.Fatalf("old cookie after logout: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestLoginThrottledWithoutEnumeration(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	login := func(email, pw string) (int, string) {
		form := url.Values{"email": {email}, "password": {pw}}
		req, _ := http.NewRequest("POST", s.srv.URL+"/dashboard/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	c1, known := login("ada@example.com", "wrong password")
	c2, unknown := login("nobody@example.com", "wrong password")
	if c1 != 401 || c2 != 401 || !strings.Contains(known, "Wrong email or password") || !strings.Contains(unknown, "Wrong email or password") {
		t.Fatalf("wrong password %d, unknown email %d", c1, c2)
	}
	for i := 0; i < 4; i++ {
		login("ada@example.com", "wrong password")
	}
	if code, body := login("ada@example.com", "correct horse battery"); code != http.StatusTooManyRequests || !strings.Contains(body, "Too many sign-in attempts") {
		t.Fatalf("after 5 failures: %d", code)
	}
}
