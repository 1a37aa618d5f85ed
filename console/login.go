package console

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/batonflow/baton/auth"
)

type loginView struct {
	Next    string
	Message string
}

// safeNext keeps a post-login destination on this console: a path, never
// another site ("//evil", "https://...").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

// fromOtherSite reports whether the browser says the request came from
// another site's page: a login it did not ask for (login CSRF) is refused.
func fromOtherSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// loginPage shows the token form, or logs in with a one-time code from
// `baton console`.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if c.authn == nil || c.sessions == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if code := r.URL.Query().Get("code"); code != "" {
		if fromOtherSite(r) {
			c.render(w, r, http.StatusForbidden, "login", "Log in", "", loginView{Next: next,
				Message: "This login link was opened from another site; open it yourself from the terminal."})
			return
		}
		token, ok := c.sessions.redeem(code)
		if !ok {
			c.render(w, r, http.StatusUnauthorized, "login", "Log in", "", loginView{Next: next,
				Message: "This login link has been used or has expired: run baton console again, or paste a token."})
			return
		}
		if _, err := c.sessions.verify(c.authn, r, token); err != nil {
			c.render(w, r, http.StatusUnauthorized, "login", "Log in", "", loginView{Next: next, Message: "The token of this link is no longer valid."})
			return
		}
		c.sessions.setCookie(w, r, token)
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", "Log in", "", loginView{Next: next})
}

// login checks a pasted token and starts a session with it.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.authn == nil || c.sessions == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	if fromOtherSite(r) {
		c.render(w, r, http.StatusForbidden, "login", "Log in", "", loginView{Next: next, Message: "Log in from the console's own page."})
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		c.render(w, r, http.StatusBadRequest, "login", "Log in", "", loginView{Next: next, Message: "Paste an API token."})
		return
	}
	if _, err := c.sessions.verify(c.authn, r, token); err != nil {
		c.render(w, r, http.StatusUnauthorized, "login", "Log in", "", loginView{Next: next, Message: "The server does not accept this token."})
		return
	}
	c.sessions.setCookie(w, r, token)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout ends the session. It needs the session's CSRF token, so that no
// other site can log a user out.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if c.sessions == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if cookie, err := r.Cookie(SessionCookie); err == nil && !c.sessions.checkCSRF(r, cookie.Value) {
		c.errorPage(w, r, http.StatusForbidden, "Log out from the console's own page.")
		return
	}
	clearCookie(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// LoginCode is the answer of POST /login/code.
type LoginCode struct {
	// Path logs its opener in once, within two minutes:
	// /login?code=CODE.
	Path string `json:"path"`
}

// loginCode hands the caller a one-time login link for its own token
// (what `baton console` prints).
func (c *Console) loginCode(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if c.sessions == nil || c.authn == nil {
		_ = json.NewEncoder(w).Encode(LoginCode{Path: "/"})
		return
	}
	code := c.sessions.newLoginCode(auth.BearerToken(r))
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(LoginCode{Path: "/login?code=" + code})
}
