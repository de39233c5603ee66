package dashboard

import "net/http"

// routes lists every page of the dashboard.
func (h *handler) routes() {
	m := h.mux
	m.Handle("GET /dashboard/static/", http.StripPrefix("/dashboard/", http.FileServerFS(staticFS)))

	m.HandleFunc("GET /dashboard/signup", h.signupShow)
	m.HandleFunc("POST /dashboard/signup", h.signupSave)
	m.HandleFunc("GET /dashboard/login", h.loginShow)
	m.HandleFunc("POST /dashboard/login", h.loginCheck)
	m.HandleFunc("POST /dashboard/logout", h.signedIn(h.logout))

	m.HandleFunc("GET /dashboard", h.signedIn(h.overviewShow))
	m.HandleFunc("GET /dashboard/{$}", h.signedIn(h.overviewShow))
	m.HandleFunc("POST /dashboard/switch", h.signedIn(h.platformSwitch))
	m.HandleFunc("POST /dashboard/platforms", h.signedIn(h.platformCreate))
	m.HandleFunc("GET /dashboard/credentials", h.signedIn(h.credentialsShow))
	m.HandleFunc("POST /dashboard/billing/checkout", h.signedIn(h.billingCheckout))

	m.HandleFunc("GET /dashboard/customers", h.signedIn(h.customerList))
	m.HandleFunc("GET /dashboard/customers/{id}", h.signedIn(h.customerShow))
	m.HandleFunc("POST /dashboard/customers/{id}/plan", h.signedIn(h.customerPlanSave))
	m.HandleFunc("POST /dashboard/customers/{id}/checkout", h.signedIn(h.customerCheckout))
	m.HandleFunc("POST /dashboard/customers/{id}/portal", h.signedIn(h.customerPortal))
	m.HandleFunc("POST /dashboard/customers/{id}/sign-out", h.signedIn(h.customerSignOut))
	m.HandleFunc("GET /dashboard/customers/{id}/delete", h.signedIn(h.customerDeleteConfirm))
	m.HandleFunc("POST /dashboard/customers/{id}/delete", h.signedIn(h.customerDelete))

	m.HandleFunc("GET /dashboard/tiers", h.signedIn(h.tiersShow))
	m.HandleFunc("POST /dashboard/tiers", h.signedIn(h.tiersSave))

	m.HandleFunc("GET /dashboard/keys", h.signedIn(h.keyList))
	m.HandleFunc("POST /dashboard/keys", h.signedIn(h.keyCreate))
	m.HandleFunc("POST /dashboard/keys/{id}/rotate", h.signedIn(h.keyRotate))
	m.HandleFunc("GET /dashboard/keys/{id}/revoke", h.signedIn(h.keyRevokeConfirm))
	m.HandleFunc("POST /dashboard/keys/{id}/revoke", h.signedIn(h.keyRevoke))

	m.HandleFunc("GET /dashboard/plugin", h.signedIn(h.pluginShow))
	m.HandleFunc("POST /dashboard/plugin", h.signedIn(h.pluginUpload))
	m.HandleFunc("POST /dashboard/plugin/rollback", h.signedIn(h.pluginRollback))
	m.HandleFunc("POST /dashboard/plugin/dry-run", h.signedIn(h.pluginDryRun))
	m.HandleFunc("GET /dashboard/plugin/remove", h.signedIn(h.pluginRemoveConfirm))
	m.HandleFunc("POST /dashboard/plugin/remove", h.signedIn(h.pluginRemove))

	m.HandleFunc("GET /dashboard/stripe", h.signedIn(h.stripeShow))
	m.HandleFunc("POST /dashboard/stripe/connect", h.signedIn(h.stripeConnect))
	m.HandleFunc("POST /dashboard/stripe/onboard", h.signedIn(h.stripeOnboard))

	m.HandleFunc("GET /dashboard/webhooks", h.signedIn(h.webhookList))
	m.HandleFunc("POST /dashboard/webhooks", h.signedIn(h.webhookCreate))
	m.HandleFunc("POST /dashboard/webhooks/{id}/test", h.signedIn(h.webhookAction(h.webhookTest)))
	m.HandleFunc("POST /dashboard/webhooks/{id}/rotate", h.signedIn(h.webhookRotate))
	m.HandleFunc("POST /dashboard/webhooks/{id}/enable", h.signedIn(h.webhookAction(h.webhookEnable)))
	m.HandleFunc("POST /dashboard/webhooks/{id}/disable", h.signedIn(h.webhookAction(h.webhookDisable)))
	m.HandleFunc("POST /dashboard/webhooks/{id}/deliveries/{event}/retry", h.signedIn(h.webhookAction(h.webhookRetry)))
	m.HandleFunc("GET /dashboard/webhooks/{id}/delete", h.signedIn(h.webhookDeleteConfirm))
	m.HandleFunc("POST /dashboard/webhooks/{id}/delete", h.signedIn(h.webhookAction(h.webhookDelete)))

	m.HandleFunc("GET /dashboard/settings", h.signedIn(h.settingsShow))
	m.HandleFunc("POST /dashboard/settings/cors", h.signedIn(h.corsSave))
	m.HandleFunc("POST /dashboard/settings/password", h.signedIn(h.passwordSave))
	m.HandleFunc("POST /dashboard/settings/signout-everywhere", h.signedIn(h.signOutEverywhere))

	m.HandleFunc("GET /dashboard/admin", h.adminShow)
	m.HandleFunc("POST /dashboard/admin", h.adminLogin)
	m.HandleFunc("POST /dashboard/admin/logout", h.adminLogout)
	m.HandleFunc("GET /dashboard/admin/platforms/{id}/suspend", h.operatorPost(h.adminSuspendConfirm))
	m.HandleFunc("POST /dashboard/admin/platforms/{id}/suspend", h.operatorPost(h.adminSuspend))
	m.HandleFunc("POST /dashboard/admin/platforms/{id}/resume", h.operatorPost(h.adminResume))

	m.HandleFunc("/dashboard/", func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, http.StatusNotFound, "There is no page here.")
	})
}
