package dashboard

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// chart is 30 days of tracks per feature as a server-rendered SVG.
type chart struct {
	SVG      template.HTML
	Features []chartFeature
	Total    int64
	today    dayTotals
}

type chartFeature struct {
	Name  string
	Color string
	Total int64
}

type dayTotals struct{ Count, Denied int64 }

var palette = []string{"#4f46e5", "#0891b2", "#16a34a", "#d97706", "#db2777", "#7c3aed", "#64748b"}

// newChart draws stacked bars, one a day from 29 days before now to now.
// Every text in it is escaped (feature names are slugs, but still).
func newChart(days []engine.DayUsage, now time.Time) *chart {
	const w, hgt, left, bottom, top = 720.0, 220.0, 40.0, 24.0, 10.0
	dates := make([]string, 30)
	idx := map[string]int{}
	for i := range dates {
		dates[i] = now.UTC().AddDate(0, 0, i-29).Format(time.DateOnly)
		idx[dates[i]] = i
	}
	per := map[string][]int64{}
	totals := make([]int64, 30)
	ch := &chart{}
	for _, d := range days {
		i, ok := idx[d.Date]
		if !ok {
			continue
		}
		if per[d.Feature] == nil {
			per[d.Feature] = make([]int64, 30)
		}
		per[d.Feature][i] += d.Count
		totals[i] += d.Count
		ch.Total += d.Count
		if i == 29 {
			ch.today.Count += d.Count
			ch.today.Denied += d.Denied
		}
	}
	names := make([]string, 0, len(per))
	for f := range per {
		names = append(names, f)
	}
	sort.Strings(names)
	var max int64 = 1
	for _, t := range totals {
		if t > max {
			max = t
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="Tracks per day, last 30 days" data-testid="usage-chart">`, w, hgt)
	plotH := hgt - bottom - top
	for _, frac := range []float64{0, 0.5, 1} {
		y := top + plotH*(1-frac)
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" class="grid"/>`, left, w, y, y)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" class="axis" text-anchor="end">%d</text>`, left-6, y+4, int64(float64(max)*frac))
	}
	bw := (w - left) / 30
	base := make([]float64, 30)
	for fi, f := range names {
		color := palette[fi%len(palette)]
		var total int64
		for i, v := range per[f] {
			total += v
			if v == 0 {
				continue
			}
			h := plotH * float64(v) / float64(max)
			y := top + plotH - base[i] - h
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				left+float64(i)*bw+2, y, bw-4, h, color, template.HTMLEscapeString(dates[i]), template.HTMLEscapeString(f), v)
			base[i] += h
		}
		ch.Features = append(ch.Features, chartFeature{Name: f, Color: color, Total: total})
	}
	for _, i := range []int{0, 10, 20, 29} {
		d, _ := time.Parse(time.DateOnly, dates[i])
		x, anchor := left+float64(i)*bw+bw/2, "middle"
		if i == 29 {
			x, anchor = w, "end"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" class="axis" text-anchor="%s">%s</text>`, x, hgt-6, anchor, d.Format("2 Jan"))
	}
	b.WriteString(`</svg>`)
	ch.SVG = template.HTML(b.String())
	return ch
}
