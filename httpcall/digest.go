package httpcall

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strings"
)

// digestChallenge is one `WWW-Authenticate: Digest ...` challenge (RFC 7616).
type digestChallenge struct {
	realm     string
	nonce     string
	opaque    string
	algorithm string // upper case; "MD5" when the server named none
	// algorithmToken is the algorithm as the server spelled it, echoed
	// back because some servers compare it case-sensitively.
	algorithmToken string
	qop            string // "auth", or "" for RFC 2069 servers that offer no qop
	userhash       bool
}

// digestAlgorithms ranks the algorithms Baton can answer, strongest first.
var digestAlgorithms = []string{"SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS"}

// pickDigestChallenge chooses the strongest Digest challenge of a 401
// response that Baton can answer, or reports false.
func pickDigestChallenge(h http.Header) (digestChallenge, bool) {
	var best digestChallenge
	bestRank := len(digestAlgorithms)
	for _, line := range h.Values("WWW-Authenticate") {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.EqualFold(scheme, "Digest") {
			continue
		}
		params := parseAuthParams(rest)
		c := digestChallenge{
			realm:     params["realm"],
			nonce:     params["nonce"],
			opaque:    params["opaque"],
			algorithm: strings.ToUpper(params["algorithm"]),
			userhash:  strings.EqualFold(params["userhash"], "true"),
		}
		if c.nonce == "" {
			continue
		}
		c.algorithmToken = params["algorithm"]
		if c.algorithm == "" {
			c.algorithm, c.algorithmToken = "MD5", "MD5"
		}
		if qop, has := params["qop"]; has {
			for option := range strings.SplitSeq(qop, ",") {
				if strings.EqualFold(strings.TrimSpace(option), "auth") {
					c.qop = "auth"
				}
			}
			// Only auth-int is offered: answering it would mean hashing
			// every body; decline the challenge instead.
			if c.qop == "" {
				continue
			}
		}
		for rank, alg := range digestAlgorithms {
			if alg == c.algorithm && rank < bestRank {
				best, bestRank = c, rank
			}
		}
	}
	return best, bestRank < len(digestAlgorithms)
}

// parseAuthParams reads the comma-separated `name=value` and
// `name="quoted value"` parameters of a challenge.
func parseAuthParams(s string) map[string]string {
	params := make(map[string]string)
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return params
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return params
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var value string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				b.WriteByte(s[i])
			}
			value = b.String()
			s = s[min(i+1, len(s)):]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			value = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		params[name] = value
	}
}

// digestAuthorization answers a challenge for one request.
func digestAuthorization(c digestChallenge, username, password, method, requestURI string) (string, error) {
	var newHash func() hash.Hash
	switch strings.TrimSuffix(c.algorithm, "-SESS") {
	case "SHA-256":
		newHash = sha256.New
	case "MD5":
		newHash = md5.New
	default:
		return "", fmt.Errorf("digest algorithm %s is not supported", c.algorithm)
	}
	h := func(parts ...string) string {
		d := newHash()
		d.Write([]byte(strings.Join(parts, ":")))
		return hex.EncodeToString(d.Sum(nil))
	}
	var nonceBytes [16]byte
	if _, err := rand.Read(nonceBytes[:]); err != nil {
		return "", fmt.Errorf("generating a digest cnonce: %w", err)
	}
	cnonce := hex.EncodeToString(nonceBytes[:])
	const nc = "00000001"

	ha1 := h(username, c.realm, password)
	if strings.HasSuffix(c.algorithm, "-SESS") {
		ha1 = h(ha1, c.nonce, cnonce)
	}
	ha2 := h(method, requestURI)
	var response string
	if c.qop != "" {
		response = h(ha1, c.nonce, nc, cnonce, c.qop, ha2)
	} else {
		response = h(ha1, c.nonce, ha2)
	}

	user := username
	if c.userhash {
		user = h(username, c.realm)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%s, realm=%s, nonce=%s, uri=%s, algorithm=%s, response=%s`,
		quoteParam(user), quoteParam(c.realm), quoteParam(c.nonce), quoteParam(requestURI), c.algorithmToken, quoteParam(response))
	if c.qop != "" {
		fmt.Fprintf(&b, `, qop=%s, nc=%s, cnonce=%s`, c.qop, nc, quoteParam(cnonce))
	}
	if c.opaque != "" {
		fmt.Fprintf(&b, `, opaque=%s`, quoteParam(c.opaque))
	}
	if c.userhash {
		b.WriteString(", userhash=true")
	}
	return b.String(), nil
}

func quoteParam(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
