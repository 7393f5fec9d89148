package server_test

import (
	"testing"

	"github.com/agentid/agentid/internal/server/servertest"
)

// hub adds the tests' own helpers to a servertest hub.
type hub struct{ *servertest.Hub }

func newHub(t testing.TB, opts ...servertest.Option) *hub { return &hub{servertest.New(t, opts...)} }
