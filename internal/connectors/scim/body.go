package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// readRequest reads a write request's body before the library sees it:
// the library ignores a read error and would parse a body cut at the
// server's limit as invalid syntax, so a body over the limit is answered
// 413 here (RFC 7644 §3.12). A User's body then has its string booleans
// made booleans (stringBooleans).
func readRequest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodDelete {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			status, detail := http.StatusBadRequest, "the request body could not be read"
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				status, detail = http.StatusRequestEntityTooLarge, "the request body is larger than this service provider accepts"
			}
			writeError(w, scimerrors.ScimError{Status: status, Detail: detail})
			return
		}
		if strings.HasPrefix(strings.TrimPrefix(r.URL.Path, "/v2"), "/Users") {
			body = stringBooleans(body, r.Method == http.MethodPatch)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// writeError writes an RFC 7644 §3.12 error.
func writeError(w http.ResponseWriter, e scimerrors.ScimError) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}

// stringBooleans rewrites the strings "True" and "False" (in any case)
// given for a boolean attribute of a User — active, emails.primary… —
// as JSON booleans. Microsoft Entra ID's provisioning sends
// {"op":"Replace","path":"active","value":"False"} to deactivate a
// person; refusing it as invalidValue (the library's strict reading of
// RFC 7643 §2.3.2) would leave that person active. Anything else, and a
// body that does not parse, is passed on unchanged for the library to
// judge.
func stringBooleans(body []byte, patch bool) []byte {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var doc map[string]any
	if d.Decode(&doc) != nil {
		return body
	}
	changed := false
	if !patch {
		changed = fixBooleans(doc, userSchema.Attributes)
	} else {
		for k, ops := range doc {
			if !strings.EqualFold(k, "Operations") {
				continue
			}
			list, _ := ops.([]any)
			for _, o := range list {
				if m, ok := o.(map[string]any); ok && fixOperation(m) {
					changed = true
				}
			}
		}
	}
	if !changed {
		return body
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return body
	}
	return out
}

// fixOperation fixes a PATCH operation's value for its path, or, with no
// path, each attribute of the value for its key read as a path.
func fixOperation(op map[string]any) bool {
	var path string
	var hasValue bool
	var valueKey string
	for k, v := range op {
		switch {
		case strings.EqualFold(k, "path"):
			path, _ = v.(string)
		case strings.EqualFold(k, "value"):
			hasValue, valueKey = true, k
		}
	}
	if !hasValue {
		return false
	}
	if path != "" {
		nv, changed := fixAt(path, op[valueKey])
		op[valueKey] = nv
		return changed
	}
	vals, ok := op[valueKey].(map[string]any)
	if !ok {
		return false
	}
	changed := false
	for k, v := range vals {
		nv, c := fixAt(k, v)
		vals[k] = nv
		changed = changed || c
	}
	return changed
}

// fixAt fixes v, the value for a User attribute path.
func fixAt(path string, v any) (any, bool) {
	p, err := filter.ParsePath([]byte(path))
	if err != nil {
		return v, false
	}
	if uri := p.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, userSchema.ID) {
		// Entra ID sends the enterprise extension's manager as the
		// manager's id alone, where RFC 7643 §4.3 has an object.
		if id, ok := v.(string); ok && strings.EqualFold(uri, enterpriseSchema.ID) &&
			strings.EqualFold(p.AttributePath.AttributeName, "manager") && p.AttributePath.SubAttribute == nil && p.SubAttribute == nil {
			return map[string]any{"value": id}, true
		}
		return v, false
	}
	attr, ok := attribute(userSchema, p.AttributePath.AttributeName)
	if !ok {
		return v, false
	}
	sub := p.AttributePath.SubAttributeName()
	if p.SubAttribute != nil {
		sub = *p.SubAttribute
	}
	if sub != "" {
		if attr, ok = subAttribute(attr, sub); !ok {
			return v, false
		}
	}
	if attr.AttributeType() == "boolean" {
		return boolOf(v)
	}
	if attr.HasSubAttributes() {
		changed := false
		for _, e := range list(v) {
			if m, ok := e.(map[string]any); ok && fixBooleans(m, attr.SubAttributes()) {
				changed = true
			}
		}
		return v, changed
	}
	return v, false
}

// fixBooleans fixes, in place, the boolean attributes of m (and of its
// complex attributes' values) that attrs name.
func fixBooleans(m map[string]any, attrs []schema.CoreAttribute) bool {
	changed := false
	for k, v := range m {
		for _, a := range attrs {
			if !strings.EqualFold(a.Name(), k) {
				continue
			}
			switch {
			case a.AttributeType() == "boolean":
				nv, c := boolOf(v)
				m[k], changed = nv, changed || c
			case a.HasSubAttributes():
				for _, e := range list(v) {
					if sm, ok := e.(map[string]any); ok && fixBooleans(sm, a.SubAttributes()) {
						changed = true
					}
				}
			}
		}
	}
	return changed
}

// boolOf is v as a boolean when it is the string true or false in any
// case.
func boolOf(v any) (any, bool) {
	s, ok := v.(string)
	switch {
	case !ok:
		return v, false
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return v, false
}

// fixResponses corrects two answers of the library to GET requests:
//   - a list response's itemsPerPage is the number of resources on the
//     page (RFC 7644 §3.4.2), where the library puts the count asked for;
//     a client stepping startIndex by itemsPerPage would skip or repeat;
//   - /ServiceProviderConfig's changePassword says supported: a client
//     may set a person's password (write-only, hashed), which the library
//     always reports as unsupported (RFC 7643 §5).
func fixResponses(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/v2")
		list := path == "/Users" || path == "/Groups" || path == "/Schemas" || path == "/ResourceTypes"
		if r.Method != http.MethodGet || !list && path != "/ServiceProviderConfig" {
			next.ServeHTTP(w, r)
			return
		}
		rec := &bufferedResponse{header: w.Header(), status: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		if rec.status == http.StatusOK {
			d := json.NewDecoder(bytes.NewReader(body))
			d.UseNumber()
			var doc map[string]any
			if d.Decode(&doc) == nil {
				if list {
					rs, _ := doc["Resources"].([]any)
					doc["itemsPerPage"] = len(rs)
				} else {
					doc["changePassword"] = map[string]any{"supported": true}
				}
				if out, err := json.Marshal(doc); err == nil {
					body = out
				}
			}
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		_, _ = w.Write(body)
	})
}

// bufferedResponse keeps a response to correct it before it is sent.
type bufferedResponse struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if !b.wrote {
		b.status, b.wrote = status, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
