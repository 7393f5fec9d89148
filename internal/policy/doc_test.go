package policy

import (
	"fmt"
	"os"
	"regexp"
	"testing"
)

var fencedBlock = regexp.MustCompile("(?s)```(cedar|cedarschema)\n(.*?)```")

// TestDocs keeps docs/policy.md honest: the schema and the default set it
// shows are the embedded ones, and every example policy validates.
func TestDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	var sawSchema, sawDefault bool
	for i, m := range fencedBlock.FindAllStringSubmatch(string(b), -1) {
		lang, body := m[1], m[2]
		t.Run(fmt.Sprintf("block %d", i), func(t *testing.T) {
			switch {
			case lang == "cedarschema":
				sawSchema = true
				if body != Schema() {
					t.Error("the schema in docs/policy.md differs from the embedded schema")
				}
			case body == defaultPolicy:
				sawDefault = true
			default:
				if err := Validate(map[string]string{"example.cedar": body}); err != nil {
					t.Errorf("example does not validate:\n%s\n%v", body, err)
				}
			}
		})
	}
	if !sawSchema || !sawDefault {
		t.Errorf("docs/policy.md shows the schema: %v, the default set: %v", sawSchema, sawDefault)
	}
}
