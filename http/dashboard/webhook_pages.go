package dashboard

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/dream-api/dream-api/engine"
)

// webhookDeliveriesShown is how many recent deliveries the page lists per
// endpoint.
const webhookDeliveriesShown = 10

// webhookRow is one endpoint of the webhooks page with its recent
// deliveries.
type webhookRow struct {
	E          *engine.WebhookEndpoint
	Deliveries []*engine.WebhookDelivery
	More       bool
}

// webhookList is GET /dashboard/webhooks: the tenant's endpoints, each with
// its recent deliveries and actions, and the form to add one.
func (h *handler) webhookList(w http.ResponseWriter, r *http.Request, a *auth) {
	h.webhookPage(w, r, a, http.StatusOK, nil, false)
}

// webhookPage renders the page with err: next to the add form's fields
// when fields, else as the page's error.
func (h *handler) webhookPage(w http.ResponseWriter, r *http.Request, a *auth, status int, err error, fields bool) {
	v := h.newView(r, a, "Webhooks", "webhooks")
	switch {
	case err != nil && fields:
		v.fieldErrors(err)
	case err != nil:
		v.Error = actionError(err)
	}
	t := a.sess.Tenant()
	eps, lerr := h.eng.Webhooks.List(r.Context(), t)
	if lerr != nil {
		h.fail(w, r, lerr)
		return
	}
	rows := make([]webhookRow, 0, len(eps))
	for _, e := range eps {
		ds, more, derr := h.eng.Webhooks.Deliveries(r.Context(), t, e.ID, engine.Page{Limit: webhookDeliveriesShown})
		if derr != nil && engine.ErrorCode(derr) != engine.ENOTFOUND { // deleted meanwhile: shown without
			h.fail(w, r, derr)
			return
		}
		rows = append(rows, webhookRow{E: e, Deliveries: ds, More: more})
	}
	v.Form["url"] = r.PostFormValue("url")
	v.Form["description"] = r.PostFormValue("description")
	checked := map[string]bool{}
	for _, e := range r.PostForm["events"] {
		checked[e] = true
	}
	v.Data = map[string]any{"Endpoints": rows, "EventTypes": engine.WebhookEventTypes, "Checked": checked,
		"Max": engine.MaxWebhookEndpoints}
	h.render(w, status, "webhooks", v)
}

// webhookCreate is POST /dashboard/webhooks, as POST
// /api/platform/webhooks: no event checked means all of them ("*"). The
// new endpoint's secret is shown once, on the page it redirects to.
func (h *handler) webhookCreate(w http.ResponseWriter, r *http.Request, a *auth) {
	in := engine.CreateWebhookInput{URL: strings.TrimSpace(r.PostFormValue("url")), Description: r.PostFormValue("description")}
	for _, e := range r.PostForm["events"] {
		if !slices.Contains(in.Events, e) {
			in.Events = append(in.Events, e)
		}
	}
	cw, err := h.eng.Webhooks.Create(r.Context(), a.sess.Tenant(), in, nil)
	if err != nil {
		h.webhookPage(w, r, a, http.StatusUnprocessableEntity, err, true)
		return
	}
	h.webhookSecret(w, r, a, cw, "Endpoint added.")
}

func (h *handler) webhookSecret(w http.ResponseWriter, r *http.Request, a *auth, cw *engine.CreatedWebhook, notice string) {
	h.setFlash(a, flash{Notice: notice, Secrets: &secrets{WebhookID: cw.Endpoint.ID, WebhookURL: cw.Endpoint.URL, WebhookSecret: cw.Secret}})
	http.Redirect(w, r, "/dashboard/webhooks", http.StatusSeeOther)
}

// webhookAction runs one action on the endpoint {id} of the session's
// tenant and redirects to the page with notice; an endpoint of another
// tenant is not found (404), and nothing changes.
func (h *handler) webhookAction(do func(r *http.Request, t engine.Tenant, id string) (string, error)) func(http.ResponseWriter, *http.Request, *auth) {
	return func(w http.ResponseWriter, r *http.Request, a *auth) {
		notice, err := do(r, a.sess.Tenant(), r.PathValue("id"))
		switch {
		case engine.ErrorCode(err) == engine.ENOTFOUND:
			h.fail(w, r, err)
		case err != nil:
			h.webhookPage(w, r, a, http.StatusUnprocessableEntity, err, false)
		default:
			h.redirect(w, r, a, "/dashboard/webhooks", notice)
		}
	}
}

// webhookTest is POST /dashboard/webhooks/{id}/test: a ping event is
// queued for the endpoint; its delivery shows in the endpoint's log.
func (h *handler) webhookTest(r *http.Request, t engine.Tenant, id string) (string, error) {
	s, err := h.eng.Webhooks.Test(r.Context(), t, id, nil)
	if err != nil {
		return "", err
	}
	return "Test ping " + s.Delivery.EventID + " queued.", nil
}

// webhookEnable is POST /dashboard/webhooks/{id}/enable (clears the reason
// a disabled endpoint was disabled for) and webhookDisable
// POST /dashboard/webhooks/{id}/disable.
func (h *handler) webhookEnable(r *http.Request, t engine.Tenant, id string) (string, error) {
	return h.webhookSetEnabled(r, t, id, true)
}

func (h *handler) webhookDisable(r *http.Request, t engine.Tenant, id string) (string, error) {
	return h.webhookSetEnabled(r, t, id, false)
}

func (h *handler) webhookSetEnabled(r *http.Request, t engine.Tenant, id string, on bool) (string, error) {
	if _, err := h.eng.Webhooks.Update(r.Context(), t, id, engine.UpdateWebhookInput{Enabled: &on}, nil); err != nil {
		return "", err
	}
	if on {
		return "Endpoint enabled.", nil
	}
	return "Endpoint disabled: its events are no longer sent.", nil
}

// webhookRetry is POST /dashboard/webhooks/{id}/deliveries/{event}/retry:
// the delivery is due again at once.
func (h *handler) webhookRetry(r *http.Request, t engine.Tenant, id string) (string, error) {
	if _, err := h.eng.Webhooks.Retry(r.Context(), t, id, r.PathValue("event"), nil); err != nil {
		return "", err
	}
	return "Delivery of " + r.PathValue("event") + " queued again.", nil
}

// webhookRotate is POST /dashboard/webhooks/{id}/rotate: a new signing
// secret, shown once; the old one keeps signing for the grace period.
func (h *handler) webhookRotate(w http.ResponseWriter, r *http.Request, a *auth) {
	cw, err := h.eng.Webhooks.RotateSecret(r.Context(), a.sess.Tenant(), r.PathValue("id"), nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.webhookSecret(w, r, a, cw, "Secret rotated: the old one keeps signing for 24 hours.")
}

// webhookDeleteConfirm is GET /dashboard/webhooks/{id}/delete.
func (h *handler) webhookDeleteConfirm(w http.ResponseWriter, r *http.Request, a *auth) {
	e, err := h.eng.Webhooks.Get(r.Context(), a.sess.Tenant(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := h.newView(r, a, "Delete webhook endpoint", "webhooks")
	v.Data = map[string]any{"What": "the endpoint " + e.URL, "Action": "/dashboard/webhooks/" + e.ID + "/delete", "Back": "/dashboard/webhooks",
		"Button": "Delete endpoint", "Note": "Its events are no longer sent, and its delivery log goes with it."}
	h.render(w, http.StatusOK, "confirm", v)
}

// webhookDelete is POST /dashboard/webhooks/{id}/delete.
func (h *handler) webhookDelete(r *http.Request, t engine.Tenant, id string) (string, error) {
	if err := h.eng.Webhooks.Delete(r.Context(), t, id); err != nil {
		return "", err
	}
	return "Endpoint deleted.", nil
}

// actionError is the message of an action's error: a validation error's
// first field message (such as "the endpoint is disabled…").
func actionError(err error) string {
	var e *engine.Error
	if errors.As(err, &e) && len(e.Fields) > 0 {
		return "Not done: " + e.Fields[0].Message + "."
	}
	return engine.ErrorMessage(err)
}
