package mcpauth_test

import (
	"context"
	"fmt"
	"log"

	"github.com/agentid/agentid/mcpauth"
	"github.com/agentid/agentid/mcpauth/mcpauthtest"
)

// A resource server reads the claims about the person that its resource
// asked the hub to put in its tokens (agentid resources update URI
// --user-claim groups=groups --user-claim department=attr:department): a
// tool can then act on the person's department, or refuse by group.
func ExampleClaims_UserClaim() {
	hub, err := mcpauthtest.Start()
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	const resource = "https://deploy.example.com/mcp"
	v, err := mcpauth.NewVerifier(context.Background(), mcpauth.Config{Issuer: hub.Issuer(), Resource: resource})
	if err != nil {
		log.Fatal(err)
	}
	tok := hub.TokenWith(mcpauthtest.TokenOptions{Audience: []string{resource}, Scopes: []string{"deploy.read"},
		Extra: map[string]any{"groups": []string{"eng", "eng-oncall"}, "department": "platform"}})
	c, err := v.Verify(context.Background(), tok)
	if err != nil {
		log.Fatal(err)
	}
	dept, _ := c.UserClaim("department")
	groups, _ := c.UserClaimList("groups")
	_, isUserClaim := c.UserClaim("sub") // registered: read c.Subject instead
	fmt.Println(dept, groups, isUserClaim)
	// Output: platform [eng eng-oncall] false
}
