package main

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/batonflow/baton/auth"
)

// oidcConfig is the server's --oidc-* flags.
type oidcConfig struct {
	issuer, audience, jwksURL              string
	grantsClaim, namespaceClaim, roleClaim string
}

func addOIDCFlags(cmd *cobra.Command, c *oidcConfig) {
	f := cmd.Flags()
	f.StringVar(&c.issuer, "oidc-issuer", "", "accept bearer JWTs of this OpenID Connect issuer (its iss claim)")
	f.StringVar(&c.audience, "oidc-audience", "", "the audience (aud claim) the JWTs must name")
	f.StringVar(&c.jwksURL, "oidc-jwks-url", "", "the issuer's key set (default: jwks_uri of its discovery document)")
	f.StringVar(&c.grantsClaim, "oidc-grants-claim", "baton_grants", `claim listing "NAMESPACE:ROLE" grants`)
	f.StringVar(&c.namespaceClaim, "oidc-namespace-claim", "", "claim holding the namespaces (a string or a list) that --oidc-role-claim's role applies to")
	f.StringVar(&c.roleClaim, "oidc-role-claim", "", "claim holding the role granted in the namespaces of --oidc-namespace-claim")
}

func (c *oidcConfig) verifier(ctx context.Context, hc *http.Client) (auth.Authenticator, error) {
	return auth.NewOIDC(ctx, auth.OIDCConfig{
		Issuer: c.issuer, Audience: c.audience, JWKSURL: c.jwksURL,
		GrantsClaim: c.grantsClaim, NamespaceClaim: c.namespaceClaim, RoleClaim: c.roleClaim,
		HTTPClient: hc,
	})
}
