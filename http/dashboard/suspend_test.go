package dashboard_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The operator suspends and resumes a platform from /dashboard/admin (a
// confirm step, the operator's CSRF token); a developer's session cannot;
// the developer of a suspended platform sees a banner and changes
// nothing, but can still sign out and switch.
func TestAdminSuspendAndResume(t *testing.T) {
	s := newSite(t, "")
	ctx := context.Background()
	if _, err := s.eng.Platforms.EnsureAdminToken(ctx, "dat_operator_token"); err != nil {
		t.Fatal(err)
	}
	dev := s.browser(t)
	dev.signup("ada@example.com", "Acme")
	pid := dev.platformID()
	suspended := func() bool {
		t.Helper()
		p, err := s.eng.Platforms.Get(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		return p.Suspended()
	}

	// A developer's session (and CSRF token) is not the operator's.
	dev.get("/dashboard")
	for _, path := range []string{"/dashboard/admin/platforms/" + pid + "/suspend", "/dashboard/admin/platforms/" + pid + "/resume"} {
		if res := dev.post(path, nil, nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/dashboard/admin" || suspended() {
			t.Errorf("developer POST %s: %d to %q, suspended %v", path, res.StatusCode, res.Header.Get("Location"), suspended())
		}
	}
	if code, body := dev.get("/dashboard/admin/platforms/" + pid + "/suspend"); strings.Contains(body, "Suspend platform") {
		t.Errorf("a developer sees the confirm step: %d", code)
	}

	op := s.browser(t)
	if res := op.post("/dashboard/admin", url.Values{"token": {"dat_operator_token"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("operator sign-in: %d", res.StatusCode)
	}
	_, page := op.get("/dashboard/admin")
	if !strings.Contains(page, `href="/dashboard/admin/platforms/`+pid+`/suspend"`) {
		t.Fatal("the admin page has no Suspend link for the platform")
	}
	if _, confirm := op.get("/dashboard/admin/platforms/" + pid + "/suspend"); !strings.Contains(confirm, `data-testid="confirm"`) || !strings.Contains(confirm, `name="reason"`) {
		t.Fatal("no confirm step with a reason")
	}
	// Without the token, with the developer's, or too long a reason: nothing.
	for name, form := range map[string]url.Values{
		"no token":        {"csrf": {""}},
		"developer token": {"csrf": {dev.csrf}},
		"long reason":     {"reason": {strings.Repeat("x", 501)}},
	} {
		if res := op.post("/dashboard/admin/platforms/"+pid+"/suspend", form, nil); res.StatusCode == http.StatusSeeOther || suspended() {
			t.Errorf("%s: %d, suspended %v", name, res.StatusCode, suspended())
		}
	}
	res := op.post("/dashboard/admin/platforms/"+pid+"/suspend", url.Values{"reason": {"<b>unpaid</b> invoices"}}, nil)
	if res.StatusCode != http.StatusSeeOther || !suspended() {
		t.Fatalf("suspend: %d, suspended %v", res.StatusCode, suspended())
	}
	_, page = op.get(res.Header.Get("Location"))
	for _, want := range []string{`data-testid="suspended"`, "is suspended", "&lt;b&gt;unpaid&lt;/b&gt; invoices", `/dashboard/admin/platforms/` + pid + `/resume`} {
		if !strings.Contains(page, want) {
			t.Errorf("admin page after suspending lacks %s", want)
		}
	}

	// The developer: a banner, and read-only.
	_, home := dev.get("/dashboard")
	if !strings.Contains(home, "This platform is suspended by the operator") || !strings.Contains(home, "&lt;b&gt;unpaid&lt;/b&gt; invoices") {
		t.Error("no suspension banner with the reason on the developer's overview")
	}
	// Signing in still works, and lands on the banner.
	again := s.browser(t)
	if res := again.post("/dashboard/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in to a suspended platform's account: %d", res.StatusCode)
	}
	if _, home := again.get("/dashboard"); !strings.Contains(home, `data-testid="suspended-banner"`) {
		t.Error("a new sign-in does not see the suspension banner")
	}
	dev.get("/dashboard/tiers")
	if res := dev.post("/dashboard/tiers", url.Values{"rows": {"1"}, "tiers.0.name": {"changed"}}, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("tiers saved on a suspended platform: %d", res.StatusCode)
	}
	if res := dev.post("/dashboard/keys", url.Values{}, nil); res.StatusCode != http.StatusForbidden {
		t.Errorf("key created on a suspended platform: %d", res.StatusCode)
	}
	if res := dev.post("/dashboard/switch", url.Values{"mode": {"live"}}, nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("switching mode on a suspended platform: %d", res.StatusCode)
	}

	op.get("/dashboard/admin")
	if res := op.post("/dashboard/admin/platforms/"+pid+"/resume", nil, nil); res.StatusCode != http.StatusSeeOther || suspended() {
		t.Fatalf("resume: %d, suspended %v", res.StatusCode, suspended())
	}
	if _, home := dev.get("/dashboard"); strings.Contains(home, "suspended by the operator") {
		t.Error("the banner stays after the resume")
	}
	if res := dev.post("/dashboard/keys", url.Values{}, nil); res.StatusCode != http.StatusSeeOther {
		t.Errorf("key creation after the resume: %d", res.StatusCode)
	}
}
