// Package arch holds no code: its test keeps the architecture of docs/design.md
// §2 true. Dependencies point inward, only the composition root knows the
// concrete storage backends, mcpauth stays a leaf that never reaches into
// the hub, and every package says what it is for in a doc comment.
package arch
