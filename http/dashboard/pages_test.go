package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/dream-api/dream-api/engine"
)

func TestKeysCreateRotateRevoke(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test}
	b.get("/dashboard/keys")
	if res := b.post("/dashboard/keys", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}
	_, body := b.get("/dashboard/keys")
	sk := regexp.MustCompile(`data-testid="new-sk">(sk_test_[0-9a-f]+)<`).FindStringSubmatch(body)
	if sk == nil {
		t.Fatal("the new secret is not shown")
	}
	if _, err := s.eng.Keys.Authenticate(context.Background(), sk[1]); err != nil {
		t.Fatalf("the shown secret does not authenticate: %v", err)
	}
	if _, again := b.get("/dashboard/keys"); strings.Contains(again, sk[1]) {
		t.Fatal("the secret is shown twice")
	}
	k, _ := s.eng.Keys.Authenticate(context.Background(), sk[1])
	if res := b.post("/dashboard/keys/"+k.ID+"/rotate", url.Values{"grace": {"0"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", res.StatusCode)
	}
	if _, err := s.eng.Keys.Authenticate(context.Background(), sk[1]); err == nil {
		t.Error("the rotated secret (grace 0) still works")
	}
	keys, _ := s.eng.Keys.List(context.Background(), ten)
	last := keys[len(keys)-1]
	if code, body := b.get("/dashboard/keys/" + last.ID + "/revoke"); code != 200 || !strings.Contains(body, "Revoke key") {
		t.Fatalf("revoke confirmation: %d", code)
	}
	if res := b.post("/dashboard/keys/"+last.ID+"/revoke", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", res.StatusCode)
	}
	keys, _ = s.eng.Keys.List(context.Background(), ten)
	if keys[len(keys)-1].RevokedAt == nil {
		t.Error("not revoked")
	}
}

func TestTierErrorsNextToTheirRow(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	b.get("/dashboard/tiers")
	// Row 1 is empty (skipped): the engine's tiers[1] is the form's row 2.
	form := url.Values{"rows": {"3"}, "tiers.0.name": {"free"}, "tiers.2.name": {"pro"}, "tiers.2.currency": {"dollars"}}
	req, _ := http.NewRequest("POST", b.s.srv.URL+"/dashboard/tiers", strings.NewReader(withCSRF(b, form).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(res)
	if res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", res.StatusCode)
	}
	i := strings.Index(body, `name="tiers.2.currency"`)
	j := strings.Index(body, "three-letter ISO currency code")
	if i < 0 || j < i || strings.Contains(body[:i], "three-letter") {
		t.Error("the currency error is not next to row 2's currency")
	}
	if !strings.Contains(body, `value="dollars"`) {
		t.Error("what was typed is not kept")
	}
}

func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	other := s.browser(t)
	if res := other.post("/dashboard/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", res.StatusCode)
	}
	b.get("/dashboard/settings")
	if res := b.post("/dashboard/settings/password", url.Values{"current": {"wrong one!!"}, "password": {"a new password"}}, nil); res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong current password: %d", res.StatusCode)
	}
	if res := b.post("/dashboard/settings/password", url.Values{"current": {"correct horse battery"}, "password": {"a new password"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("change: %d", res.StatusCode)
	}
	if code, _ := b.get("/dashboard/settings"); code != 200 {
		t.Errorf("this browser was signed out: %d", code)
	}
	res, _ := other.c.Get(s.srv.URL + "/dashboard")
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Errorf("the other session survived the password change: %d", res.StatusCode)
	}
}

func TestCustomersPaginate(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test}
	for i := 0; i < 30; i++ {
		if _, err := s.eng.Customers.Create(context.Background(), ten, "pk", engine.CreateCustomerInput{Email: fmt.Sprintf("c%02d@example.com", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, first := b.get("/dashboard/customers")
	next := regexp.MustCompile(`href="/dashboard/customers\?after=(cus_[0-9a-z]+)"`).FindStringSubmatch(first)
	if next == nil {
		t.Fatal("no next page")
	}
	_, second := b.get("/dashboard/customers?after=" + next[1])
	emails := regexp.MustCompile(`c\d\d@example\.com`)
	p1, p2 := emails.FindAllString(first, -1), emails.FindAllString(second, -1)
	seen := map[string]bool{}
	for _, e := range append(p1, p2...) {
		if seen[e] {
			t.Errorf("%s on both pages", e)
		}
		seen[e] = true
	}
	if len(p1) != 25 || len(p2) != 5 || len(seen) != 30 {
		t.Errorf("pages of %d and %d customers, %d in all; want 25, 5, 30", len(p1), len(p2), len(seen))
	}
	if strings.Contains(second, "?after=") {
		t.Error("the last page links to a next one")
	}
	if _, found := b.get("/dashboard/customers?q=C07@example.com"); !strings.Contains(found, "c07@example.com") || strings.Contains(found, "c08@") {
		t.Error("search by email")
	}
}

func withCSRF(b *browser, form url.Values) url.Values {
	form.Set("csrf", b.csrf)
	return form
}

func readAll(res *http.Response) string {
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestCustomerSignInStateAndSignOut: the customer page shows the
// customer's sessions (dream-api's own sign-in) and ends them all.
func TestCustomerSignInStateAndSignOut(t *testing.T) {
	s := newSite(t, "")
	b := s.browser(t)
	b.signup("ada@example.com", "Acme")
	ctx := context.Background()
	ten := engine.Tenant{PlatformID: b.platformID(), Mode: engine.Test}
	keys, err := s.eng.Keys.List(ctx, ten)
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v", err)
	}
	c, err := s.eng.Customers.Create(ctx, ten, keys[0].PublishableKey, engine.CreateCustomerInput{Email: "ann@example.com", Password: "violet staple engine"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, body := b.get("/dashboard/customers/" + c.ID); !strings.Contains(body, "Not signed in.") {
		t.Error("a customer without sessions is not shown as not signed in")
	}
	for range 2 {
		if _, err := s.eng.Auth.SignIn(ctx, ten, "192.0.2.1", engine.PasswordSignIn{Email: "ann@example.com", Password: "violet staple engine"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, body := b.get("/dashboard/customers/" + c.ID); !strings.Contains(body, "Signed in: 2 sessions.") {
		t.Error("the two sessions are not shown")
	}
	if res := b.post("/dashboard/customers/"+c.ID+"/sign-out", nil, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", res.StatusCode)
	}
	if ss, _ := s.eng.Auth.Sessions(ctx, ten, c.ID); len(ss) != 0 {
		t.Errorf("%d sessions after signing out everywhere", len(ss))
	}
}
