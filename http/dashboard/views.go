package dashboard

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/dream-api/dream-api/engine"
)

// views are the parsed pages: each page template with the layout.
type views struct {
	pages map[string]*template.Template
}

var funcs = template.FuncMap{
	"money": money,
	"date":  func(t time.Time) string { return t.UTC().Format("2 Jan 2006") },
	"datetime": func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
	// clock is a moment to the second (datetime is to the minute).
	"clock": func(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04:05 UTC") },
	"limit": func(l int64) string {
		if l < 0 {
			return "unlimited"
		}
		return fmt.Sprint(l)
	},
	"pct": func(count, limit int64) int {
		if limit <= 0 {
			return 0
		}
		p := count * 100 / limit
		if p > 100 {
			p = 100
		}
		return int(p)
	},
	"field": func(fields map[string]string, name string) string { return fields[name] },
	"deref": func(s *string) string {
		if s == nil {
			return ""
		}
		return *s
	},
	"fieldf": func(fields map[string]string, format string, args ...any) string {
		return fields[fmt.Sprintf(format, args...)]
	},
}

// money formats minor units of currency: 1500 usd is "$15.00".
func money(amount int64, currency string) string {
	sym := map[string]string{"usd": "$", "eur": "€", "gbp": "£"}[strings.ToLower(currency)]
	s := fmt.Sprintf("%d.%02d", amount/100, abs(amount%100))
	if sym != "" {
		return sym + s
	}
	return s + " " + strings.ToUpper(currency)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

func mustParseViews() *views {
	layout, err := fs.ReadFile(templateFS, "templates/layout.html")
	if err != nil {
		panic(err)
	}
	v := &views{pages: map[string]*template.Template{}}
	files, _ := fs.Glob(templateFS, "templates/*.html")
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		body, _ := fs.ReadFile(templateFS, f)
		t := template.Must(template.New("layout").Funcs(funcs).Parse(string(layout)))
		template.Must(t.New(name).Parse(string(body)))
		v.pages[name] = t
	}
	return v
}

// view is what every page template gets.
type view struct {
	Title     string
	Nav       string // the active navigation entry
	CSRF      string
	Dev       *engine.Developer
	Platform  *engine.Platform
	Platforms []*engine.Platform
	Mode      string
	Notice    string
	Secrets   *secrets // keys shown once, from the previous action
	// PayFirst: the operator bills platforms and this one's subscription
	// is not active, so its live keys wait (test keys work).
	PayFirst bool
	Error    string
	// Fields are validation errors by field name, shown next to it.
	Fields map[string]string
	Form   map[string]string
	Data   any
}

// newView collects the common data of a signed-in page.
func (h *handler) newView(r *http.Request, a *auth, title, nav string) *view {
	v := &view{Title: title, Nav: nav, Fields: map[string]string{}, Form: map[string]string{}}
	if a == nil {
		return v
	}
	v.CSRF, v.Dev, v.Mode = a.sess.CSRFToken, a.dev, a.sess.Mode.String()
	for _, id := range a.dev.Platforms {
		p, err := h.eng.Platforms.Get(r.Context(), id)
		if err != nil {
			continue
		}
		v.Platforms = append(v.Platforms, p)
		if id == a.sess.PlatformID {
			v.Platform = p
		}
	}
	if b, err := h.eng.Stripe.PlatformBilling(r.Context(), a.sess.PlatformID); err == nil {
		v.PayFirst = b.Required && !b.Active
	}
	f := h.takeFlash(a)
	v.Notice, v.Secrets = f.Notice, f.Secrets
	return v
}

// fieldErrors puts a validation error's fields into v; other errors become
// v.Error.
func (v *view) fieldErrors(err error) {
	var e *engine.Error
	if !errors.As(err, &e) || e.Code != engine.EVALIDATION || len(e.Fields) == 0 {
		v.Error = engine.ErrorMessage(err)
		return
	}
	v.Error = "Please correct the fields marked below."
	for _, f := range e.Fields {
		if v.Fields[f.Field] == "" {
			v.Fields[f.Field] = f.Message
		}
	}
}

// render writes page with v, with status.
func (h *handler) render(w http.ResponseWriter, status int, page string, v *view) {
	t := h.views.pages[page]
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("dashboard template", "page", page, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError shows a message on an error page.
func (h *handler) renderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := &view{Title: http.StatusText(status), Error: msg, Fields: map[string]string{}}
	if a := authOf(r); a != nil {
		v = h.newView(r, a, http.StatusText(status), "")
		v.Error = msg
	}
	h.render(w, status, "error", v)
}
