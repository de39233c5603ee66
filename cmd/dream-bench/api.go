package main

// A small client of dream-api's admin and platform API, for setting up a
// run and checking its counts afterwards.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

type apiClient struct {
	base string
	hc   *http.Client
}

func newAPIClient(addr string) *apiClient {
	return &apiClient{base: "http://" + addr, hc: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
}

// call sends one request and decodes the JSON answer; a status other than
// want is an error.
func (c *apiClient) call(ctx context.Context, method, path, key, ctype string, body []byte, want int) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %s", method, path, res.StatusCode, want, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", method, path, err, raw)
	}
	return out, nil
}

func (c *apiClient) callJSON(ctx context.Context, method, path, key string, body any, want int) (map[string]any, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return c.call(ctx, method, path, key, "application/json", b, want)
}

// createPlatform makes a platform through the admin API and returns its
// live secret key.
func (c *apiClient) createPlatform(ctx context.Context, adminToken, name string) (string, error) {
	out, err := c.callJSON(ctx, "POST", "/admin/platforms", adminToken, map[string]any{"name": name}, 201)
	if err != nil {
		return "", err
	}
	sk, _ := out["secretKey"].(string)
	if !strings.HasPrefix(sk, "sk_live_") {
		return "", fmt.Errorf("POST /admin/platforms: no secret key in %v", out)
	}
	return sk, nil
}

// putTiers gives the platform one tier, free, with limit on requests.
func (c *apiClient) putTiers(ctx context.Context, sk string, limit int64) error {
	_, err := c.callJSON(ctx, "PUT", "/api/platform/tiers", sk,
		map[string]any{"tiers": []any{map[string]any{"name": "free", "limits": map[string]int64{"requests": limit}}}}, 200)
	return err
}

// createCustomers makes n customers (8 requests at a time) and returns
// their ids.
func (c *apiClient) createCustomers(ctx context.Context, sk, prefix string, n int) ([]string, error) {
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := c.callJSON(ctx, "POST", "/api/customers", sk,
				map[string]any{"email": fmt.Sprintf("%s%d@bench.example", prefix, i), "plan": "free"}, 201)
			if err != nil {
				errs[i] = err
				return
			}
			cus, _ := out["customer"].(map[string]any)
			ids[i], _ = cus["id"].(string)
			if ids[i] == "" {
				errs[i] = fmt.Errorf("POST /api/customers: no id in %v", out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// putPlugin uploads a WASM policy and returns its version.
func (c *apiClient) putPlugin(ctx context.Context, sk string, wasm []byte) (string, error) {
	out, err := c.call(ctx, "PUT", "/api/platform/plugin", sk, "application/wasm", wasm, 201)
	if err != nil {
		return "", err
	}
	v, _ := out["version"].(string)
	return v, nil
}

// count is the stored count of requests of a customer this period.
func (c *apiClient) count(ctx context.Context, sk, id string) (int64, error) {
	out, err := c.call(ctx, "GET", "/api/usage?customerId="+url.QueryEscape(id), sk, "", nil, 200)
	if err != nil {
		return 0, err
	}
	list, _ := out["usage"].([]any)
	for _, u := range list {
		m, _ := u.(map[string]any)
		if m["feature"] == "requests" {
			n, _ := m["count"].(float64)
			return int64(n), nil
		}
	}
	return 0, fmt.Errorf("GET /api/usage: no requests usage for %s: %v", id, out)
}

// metrics reads /metrics and returns every sample by its name with labels
// as written (`name{label="v"}`); the given names must be present.
func (c *apiClient) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %d", res.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return out, fmt.Errorf("GET /metrics: no %s", n)
		}
	}
	return out, sc.Err()
}
