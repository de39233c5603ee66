package dashboard

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// Form parsing, apart from the page actions. Parsers never fail: what does
// not parse is passed on so that the engine's validation names the field,
// or is reported by the parser as a field error of its own.

func parseSignup(r *http.Request) engine.SignupInput {
	return engine.SignupInput{
		Email:        strings.TrimSpace(r.PostFormValue("email")),
		Password:     r.PostFormValue("password"),
		PlatformName: r.PostFormValue("name"),
		IP:           clientIP(r),
	}
}

// tierRow is one row of the tiers form, as typed.
type tierRow struct {
	Index       int
	Name        string
	DisplayName string
	Price       string
	Currency    string
	Interval    string
	Limits      string // "feature=limit" per line
	Features    string // comma-separated boolean features that are on
	RateLimit   string
	PriceID     string
	ProductID   string
}

// maxTierRows bounds the rows a tiers form may send.
const maxTierRows = engine.MaxTiers + 1

// parseTiers reads the tier rows of the form (rows with an empty name are
// skipped) into the engine's input. rowOf maps the input's tier index to
// its form row; fields has the problems found here.
func parseTiers(r *http.Request) (rows []tierRow, in engine.TierConfigInput, rowOf []int, fields map[string]string) {
	fields = map[string]string{}
	n, _ := strconv.Atoi(r.PostFormValue("rows"))
	n = min(max(n, 0), maxTierRows)
	for i := 0; i < n; i++ {
		get := func(k string) string { return strings.TrimSpace(r.PostFormValue(fmt.Sprintf("tiers.%d.%s", i, k))) }
		row := tierRow{Index: i, Name: get("name"), DisplayName: get("displayName"), Price: get("price"), Currency: get("currency"),
			Interval: get("interval"), Limits: get("limits"), Features: get("features"), RateLimit: get("rateLimit")}
		rows = append(rows, row)
		if row.Name == "" || get("remove") != "" {
			continue
		}
		ti := engine.TierInput{Name: row.Name, DisplayName: row.DisplayName, Currency: row.Currency, Interval: row.Interval,
			Limits: map[string]int64{}, Features: map[string]bool{}}
		key := func(k string) string { return fmt.Sprintf("tiers[%d].%s", i, k) }
		if row.Price != "" {
			p, err := strconv.ParseFloat(row.Price, 64)
			if err != nil || math.IsNaN(p) || math.IsInf(p, 0) || p > 1e9 {
				fields[key("price")] = "must be an amount such as 15 or 9.99"
			} else {
				ti.Price = int64(math.Round(p * 100))
			}
		}
		if row.RateLimit != "" {
			v, err := strconv.ParseInt(row.RateLimit, 10, 64)
			if err != nil {
				fields[key("rateLimitPerMinute")] = "must be a whole number (0: no per-minute limit)"
			}
			ti.RateLimitPerMinute = v
		}
		for _, line := range strings.FieldsFunc(row.Limits, func(c rune) bool { return c == '\n' || c == ',' }) {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			f, l, ok := strings.Cut(line, "=")
			v, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
			if !ok || err != nil {
				fields[key("limits")] = fmt.Sprintf("%q: write feature=limit, one per line (-1: unlimited)", line)
				continue
			}
			ti.Limits[strings.TrimSpace(f)] = v
		}
		for _, f := range strings.Split(row.Features, ",") {
			if f = strings.TrimSpace(f); f != "" {
				ti.Features[f] = true
			}
		}
		in.Tiers = append(in.Tiers, ti)
		rowOf = append(rowOf, i)
	}
	return rows, in, rowOf, fields
}

// tierRows are a tier config as form rows, plus an empty one to add a tier.
func tierRows(tc *engine.TierConfig) []tierRow {
	var rows []tierRow
	for i, t := range tc.Tiers {
		var limits []string
		for _, f := range sortedKeys(t.Limits) {
			limits = append(limits, fmt.Sprintf("%s=%d", f, t.Limits[f]))
		}
		var feats []string
		for _, f := range sortedKeys(t.Features) {
			if t.Features[f] {
				feats = append(feats, f)
			}
		}
		row := tierRow{Index: i, Name: t.Name, DisplayName: t.DisplayName, Price: strconv.FormatFloat(float64(t.Price)/100, 'f', 2, 64),
			Currency: t.Currency, Interval: t.Interval, Limits: strings.Join(limits, "\n"), Features: strings.Join(feats, ", "),
			RateLimit: strconv.FormatInt(t.RateLimitPerMinute, 10)}
		if t.PriceID != nil {
			row.PriceID = *t.PriceID
		}
		if t.ProductID != nil {
			row.ProductID = *t.ProductID
		}
		rows = append(rows, row)
	}
	return append(rows, tierRow{Index: len(rows), Currency: "usd", Interval: "month", RateLimit: "0"})
}
