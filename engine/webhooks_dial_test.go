package engine

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The address a delivery dials is checked after the name is resolved, so a
// host name that resolves (or rebinds) to a refused address is refused too.
func TestWebhookDialRefusesResolvedAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		wantErr      string
	}{
		{"loopback by name, private not allowed", "http://localhost" + port, false, "private or loopback"},
		{"loopback, private not allowed", srv.URL, false, "private or loopback"},
		{"loopback, private allowed", srv.URL, true, ""},
		{"link-local, private allowed", "http://169.254.169.254/latest/meta-data", true, "link-local"},
		{"link-local IPv6, private allowed", "http://[fe80::1%25lo]:80/", true, "link-local"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newHookWorker(&core{}, WebhookOptions{AllowPrivate: tc.allowPrivate})
			resp, err := w.client.Get(tc.url)
			if resp != nil {
				resp.Body.Close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("GET %s: %v", tc.url, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("GET %s: err = %v, want %q", tc.url, err, tc.wantErr)
			}
		})
	}
}
