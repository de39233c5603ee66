package http

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	decisions *prometheus.CounterVec
	// decided holds the decisions' counters of every call and outcome,
	// looked up once.
	decided map[[2]string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dream_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dream_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"route"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dream_track_decisions_total", Help: "Track and check decisions by outcome (allowed, denied, rate_limited, plugin_fallback).",
		}, []string{"call", "outcome"}),
	}
	m.decided = make(map[[2]string]prometheus.Counter)
	for _, call := range []string{"track", "check"} {
		for _, outcome := range []string{"allowed", "denied", "rate_limited", "plugin_fallback"} {
			m.decided[[2]string{call, outcome}] = m.decisions.WithLabelValues(call, outcome)
		}
	}
	reg.MustRegister(m.requests, m.latency, m.decisions,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// decision counts one decision of call ("track", "check") with outcome.
func (m *metrics) decision(call, outcome string) {
	if c := m.decided[[2]string{call, outcome}]; c != nil {
		c.Inc()
		return
	}
	m.decisions.WithLabelValues(call, outcome).Inc()
}

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// routeMetrics are the collectors of one route and method, looked up once
// when the route is added, so that a request costs no label lookups.
type routeMetrics struct {
	m       *metrics
	method  string
	route   string
	latency prometheus.Observer

	mu       sync.RWMutex
	byStatus map[int]prometheus.Counter
}

func (m *metrics) route(method, route string) *routeMetrics {
	return &routeMetrics{m: m, method: method, route: route,
		latency: m.latency.WithLabelValues(route), byStatus: make(map[int]prometheus.Counter)}
}

func (rm *routeMetrics) observe(status int, d time.Duration) {
	rm.mu.RLock()
	c := rm.byStatus[status]
	rm.mu.RUnlock()
	if c == nil {
		c = rm.m.requests.WithLabelValues(rm.route, rm.method, strconv.Itoa(status))
		rm.mu.Lock()
		rm.byStatus[status] = c
		rm.mu.Unlock()
	}
	c.Inc()
	rm.latency.Observe(d.Seconds())
}
