package dashboard

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// pluginShow is GET /dashboard/plugin: the active module, its breaker and
// recent fallbacks (in this process, since it started), its versions, the
// upload, dry-run and remove forms.
func (h *handler) pluginShow(w http.ResponseWriter, r *http.Request, a *auth) {
	h.pluginPage(w, r, a, http.StatusOK, nil, nil)
}

func (h *handler) pluginPage(w http.ResponseWriter, r *http.Request, a *auth, status int, err error, dry *engine.DryRunResult) {
	v := h.newView(r, a, "Limit plugin", "plugin")
	if err != nil {
		v.fieldErrors(err)
	}
	o, gerr := h.eng.Plugins.Get(r.Context(), a.sess.Tenant())
	if gerr != nil {
		h.fail(w, r, gerr)
		return
	}
	for _, k := range []string{"plan", "feature", "usage", "quantity", "limit"} {
		v.Form[k] = r.FormValue(k)
	}
	if v.Form["feature"] == "" {
		v.Form["feature"] = "requests"
	}
	v.Data = map[string]any{"O": o, "Dry": dry, "Health": h.eng.Plugins.Health(a.sess.Tenant())}
	h.render(w, status, "plugin", v)
}

// pluginUpload is POST /dashboard/plugin: a .wasm module, as PUT
// /api/platform/plugin takes it; it becomes the active version.
func (h *handler) pluginUpload(w http.ResponseWriter, r *http.Request, a *auth) {
	f, _, err := r.FormFile("module")
	if err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, engine.Errorf(engine.EVALIDATION, "Choose a .wasm file to upload."), nil)
		return
	}
	defer f.Close()
	wasm, err := io.ReadAll(f)
	if err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, engine.Errorf(engine.EVALIDATION, "The file could not be read."), nil)
		return
	}
	st, err := h.eng.Plugins.Upload(r.Context(), a.sess.Tenant(), wasm, r.FormValue("onError"), nil)
	if err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, err, nil)
		return
	}
	h.redirect(w, r, a, "/dashboard/plugin", "Version "+st.Version+" uploaded and active.")
}

// pluginRollback is POST /dashboard/plugin/rollback: an earlier version
// becomes the active one.
func (h *handler) pluginRollback(w http.ResponseWriter, r *http.Request, a *auth) {
	st, err := h.eng.Plugins.Rollback(r.Context(), a.sess.Tenant(), r.PostFormValue("version"), nil)
	if err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, err, nil)
		return
	}
	h.redirect(w, r, a, "/dashboard/plugin", "Version "+st.Version+" is active again.")
}

// pluginDryRun is POST /dashboard/plugin/dry-run: what the module decides
// for the given input, counting nothing (it changes nothing, so the page is
// rendered with the decision instead of redirected).
func (h *handler) pluginDryRun(w http.ResponseWriter, r *http.Request, a *auth) {
	in := engine.DryRunInput{Plan: strings.TrimSpace(r.PostFormValue("plan")), Feature: strings.TrimSpace(r.PostFormValue("feature"))}
	var v engine.Validation
	num := func(name string) (int64, bool) {
		s := strings.TrimSpace(r.PostFormValue(name))
		if s == "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			v.Add(name, "must be a whole number")
		}
		return n, true
	}
	in.Usage, _ = num("usage")
	if q, ok := num("quantity"); ok {
		in.Quantity = &q
	}
	if l, ok := num("limit"); ok {
		in.Limit = &l
	}
	if err := v.Err(); err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, err, nil)
		return
	}
	res, err := h.eng.Plugins.DryRun(r.Context(), a.sess.Tenant(), r.PostFormValue("version"), in)
	if err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, err, nil)
		return
	}
	h.pluginPage(w, r, a, http.StatusOK, nil, res)
}

// pluginRemoveConfirm is GET /dashboard/plugin/remove.
func (h *handler) pluginRemoveConfirm(w http.ResponseWriter, r *http.Request, a *auth) {
	v := h.newView(r, a, "Remove plugin", "plugin")
	v.Data = map[string]any{"What": "the active limit plugin", "Action": "/dashboard/plugin/remove", "Back": "/dashboard/plugin",
		"Button": "Remove plugin", "Note": "The built-in limits decide again at once. Uploaded versions are kept for a rollback."}
	h.render(w, http.StatusOK, "confirm", v)
}

// pluginRemove is POST /dashboard/plugin/remove, as DELETE
// /api/platform/plugin.
func (h *handler) pluginRemove(w http.ResponseWriter, r *http.Request, a *auth) {
	if err := h.eng.Plugins.Disable(r.Context(), a.sess.Tenant()); err != nil {
		h.pluginPage(w, r, a, http.StatusUnprocessableEntity, err, nil)
		return
	}
	h.redirect(w, r, a, "/dashboard/plugin", "Plugin removed: the built-in limits decide.")
}
