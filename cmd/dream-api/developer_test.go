package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// dashboardLogin signs in at /dashboard/login as a browser would and
// reports where it was sent.
func dashboardLogin(t *testing.T, base, email, password string) (int, string) {
	t.Helper()
	form := url.Values{"email": {email}, "password": {password}}
	req, _ := http.NewRequest("POST", base+"/dashboard/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Location")
}

type createdDeveloper struct {
	DeveloperID string `json:"developerId"`
	Email       string `json:"email"`
	Password    string `json:"password"`
	PlatformID  string `json:"platformId"`
	SecretKey   string `json:"secretKey"`
	Test        struct {
		SecretKey string `json:"secretKey"`
	} `json:"test"`
}

func TestDeveloperCreateCLI(t *testing.T) {
	ctx := context.Background()
	t.Run("opens the data dir when no server answers; the password is generated", func(t *testing.T) {
		data := t.TempDir()
		t.Setenv("DREAM_DEVELOPER_PASSWORD", "")
		var out bytes.Buffer
		if err := developerCreate(ctx, []string{"--email", "ada@example.com", "--platform-name", "Local Co",
			"--server", "http://127.0.0.1:1", "--data", data}, &out); err != nil {
			t.Fatal(err)
		}
		var d createdDeveloper
		if err := json.Unmarshal(out.Bytes(), &d); err != nil || !strings.HasPrefix(d.DeveloperID, "dev_") || len(d.Password) < 10 ||
			!strings.HasPrefix(d.PlatformID, "plt_") || !strings.HasPrefix(d.Test.SecretKey, "sk_test_") {
			t.Fatalf("output %s (%v)", out.String(), err)
		}
		m := runMain(t, data, "")
		if !authenticates(t, m.Addr(), d.SecretKey) {
			t.Error("the printed secret key does not authenticate")
		}
		if code, loc := dashboardLogin(t, "http://"+m.Addr(), "ada@example.com", d.Password); code != http.StatusSeeOther || loc != "/dashboard" {
			t.Errorf("dashboard sign-in with the printed password: %d %s", code, loc)
		}
	})
	t.Run("through a running server's admin API, with DREAM_DEVELOPER_PASSWORD", func(t *testing.T) {
		m := runMain(t, t.TempDir(), "admin-token-for-cli")
		t.Setenv("DREAM_ADMIN_TOKEN", "admin-token-for-cli")
		t.Setenv("DREAM_DEVELOPER_PASSWORD", "correct horse battery")
		var out bytes.Buffer
		if err := developerCreate(ctx, []string{"--email", "bob@example.com", "--platform-name", "Remote Co", "--server", "http://" + m.Addr()}, &out); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "correct horse") {
			t.Error("a password that was given is printed")
		}
		if code, _ := dashboardLogin(t, "http://"+m.Addr(), "bob@example.com", "correct horse battery"); code != http.StatusSeeOther {
			t.Errorf("dashboard sign-in: %d", code)
		}
		err := developerCreate(ctx, []string{"--email", "bob@example.com", "--platform-name", "Again", "--server", "http://" + m.Addr()}, &out)
		if err == nil || !strings.Contains(err.Error(), "409") {
			t.Errorf("the same email again: %v, want a 409", err)
		}
	})
}

func TestSignupClosed(t *testing.T) {
	ts := startServer(t, map[string]string{"DREAM_SIGNUP": "closed"})
	form := url.Values{"email": {"eve@example.com"}, "password": {"correct horse battery"}, "name": {"Eve"}}
	signup, _ := http.NewRequest("POST", ts.URL+"/dashboard/signup", strings.NewReader(form.Encode()))
	signup.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(signup)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("signup while closed: %d, want 403", res.StatusCode)
	}
	if code, _ := dashboardLogin(t, ts.URL, "eve@example.com", "correct horse battery"); code != http.StatusUnauthorized {
		t.Errorf("an account was made while signup is closed: sign-in %d", code)
	}
	// The operator still makes accounts.
	ts.expect(t, req{Method: "POST", Path: "/admin/developers", Key: ts.AdminToken, Body: map[string]any{"email": "eve@example.com", "password": "correct horse battery", "platformName": "Eve"}}, 201, "")
	if code, _ := dashboardLogin(t, ts.URL, "eve@example.com", "correct horse battery"); code != http.StatusSeeOther {
		t.Errorf("sign-in of an operator-made account: %d", code)
	}
	ts.expect(t, req{Method: "POST", Path: "/admin/developers", Key: ts.AdminToken, Body: map[string]any{"email": "eve@example.com", "password": "short", "platformName": ""}}, 422, "validation_failed")
	ts.expect(t, req{Method: "POST", Path: "/admin/developers", Key: "", Body: map[string]any{"email": "x@example.com", "password": "correct horse battery", "platformName": "X"}}, 401, "")

	bad := NewMain()
	bad.Getenv = func(k string) string {
		if k == "DREAM_SIGNUP" {
			return "maybe"
		}
		return ""
	}
	if err := bad.ParseFlags(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "DREAM_SIGNUP") {
		t.Errorf("DREAM_SIGNUP=maybe: %v", err)
	}
}

// TestDashboardOperatorBilling: with DREAM_PLATFORM_PRICE_ID, a new
// developer sees that live keys wait, and the dashboard starts the
// platform's Checkout on the operator's Stripe.
func TestDashboardOperatorBilling(t *testing.T) {
	ts, mock := stripeServer(t, map[string]string{"STRIPE_SECRET_KEY": "sk_live_operator0001", "DREAM_PLATFORM_PRICE_ID": "price_dreamPlatform", "DREAM_PUBLIC_URL": ""})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		r, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		res, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	post("/dashboard/signup", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery"}, "name": {"Paying"}})
	res, err := c.Get(ts.URL + "/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `data-testid="pay-first"`) {
		t.Fatal("the overview does not say that live keys wait for the subscription")
	}
	csrf := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindSubmatch(body)
	res = post("/dashboard/billing/checkout", url.Values{"csrf": {string(csrf[1])}})
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "https://") {
		t.Fatalf("subscribe: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	sess := stripeOnly(t, mock, "POST", "/v1/checkout/sessions")
	stripeForm(t, sess, map[string]string{"mode": "subscription", "line_items[0][price]": "price_dreamPlatform", "customer_email": "ada@example.com"})
}
