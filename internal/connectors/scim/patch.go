package scim

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// applyPatch applies RFC 7644 §3.5.2 operations, which the library has
// validated against s, to res: a resource's attributes keyed by their
// schema names, as toAttrs builds them. readOnly attributes are refused
// (mutability); an operation whose value filter matches nothing where
// it must is noTarget.
func applyPatch(res map[string]any, s schema.Schema, ops []scim.PatchOperation) error {
	for _, op := range ops {
		if err := applyOp(res, s, op); err != nil {
			return err
		}
	}
	return nil
}

func applyOp(res map[string]any, s schema.Schema, op scim.PatchOperation) error {
	if op.Path == nil {
		// add or replace with the attributes in the value (§3.5.2.1,
		// §3.5.2.3): each as if it were the path.
		vals, ok := op.Value.(map[string]any)
		if !ok {
			return scimError(scimerrors.ScimErrorInvalidValue, "an operation without a path takes an object of attributes")
		}
		// Each key is an attribute path (RFC 7644 §3.5.2.3 names
		// attributes; clients also send "name.givenName" or the
		// schema-qualified name, which the library validated as paths).
		for _, k := range slices.Sorted(maps.Keys(vals)) {
			if ext, ok := extensionOf(s, k); ok {
				// The extension's attributes as an object (RFC 7644
				// §3.5.2.3's enterprise example).
				if err := inExtension(res, ext, func(sub map[string]any) error {
					return applyOp(sub, ext, scim.PatchOperation{Op: op.Op, Value: vals[k]})
				}); err != nil {
					return err
				}
				continue
			}
			p, err := filter.ParsePath([]byte(k))
			if err != nil {
				return scimError(scimerrors.ScimErrorInvalidPath, "no attribute "+k)
			}
			if err := applyOp(res, s, scim.PatchOperation{Op: op.Op, Path: &p, Value: vals[k]}); err != nil {
				return err
			}
		}
		return nil
	}
	p := *op.Path
	if uri := p.AttributePath.URI(); uri != "" && !strings.EqualFold(uri, s.ID) {
		ext, ok := extensionOf(s, uri)
		if !ok {
			return scimError(scimerrors.ScimErrorInvalidPath, "the schema "+uri+" has no attributes here")
		}
		p.AttributePath.URIPrefix = nil
		return inExtension(res, ext, func(sub map[string]any) error {
			return applyOp(sub, ext, scim.PatchOperation{Op: op.Op, Path: &p, Value: op.Value})
		})
	}
	attr, ok := attribute(s, p.AttributePath.AttributeName)
	if !ok {
		return scimError(scimerrors.ScimErrorInvalidPath, "no attribute "+p.AttributePath.AttributeName)
	}
	if attr.Mutability() == "readOnly" {
		return scimError(scimerrors.ScimErrorMutability, attr.Name()+" is read-only")
	}
	sub := p.AttributePath.SubAttributeName()
	if p.SubAttribute != nil {
		sub = *p.SubAttribute
	}
	if sub != "" {
		sa, ok := subAttribute(attr, sub)
		if !ok {
			return scimError(scimerrors.ScimErrorInvalidPath, attr.Name()+" has no sub-attribute "+sub)
		}
		sub = sa.Name()
	}
	name := attr.Name()
	switch {
	case p.ValueExpression != nil:
		if !attr.MultiValued() {
			return scimError(scimerrors.ScimErrorInvalidPath, "a value filter needs a multi-valued attribute")
		}
		return applyFiltered(res, s, attr, p.ValueExpression, sub, op)
	case sub != "" && attr.MultiValued():
		// Every value's sub-attribute.
		for _, e := range list(res[name]) {
			if m, ok := e.(map[string]any); ok {
				setSub(m, sub, op.Op, op.Value)
			}
		}
		return nil
	case sub != "":
		m, _ := res[name].(map[string]any)
		if m == nil {
			if op.Op == scim.PatchOperationRemove {
				return nil
			}
			m = map[string]any{}
			res[name] = m
		}
		setSub(m, sub, op.Op, op.Value)
		if len(m) == 0 {
			delete(res, name)
		}
		return nil
	}
	return applyAttr(res, attr, op.Op, op.Value)
}

// applyAttr applies an operation on a whole attribute.
func applyAttr(res map[string]any, attr schema.CoreAttribute, op string, v any) error {
	if attr.Mutability() == "readOnly" {
		return scimError(scimerrors.ScimErrorMutability, attr.Name()+" is read-only")
	}
	name := attr.Name()
	switch {
	case op == scim.PatchOperationRemove:
		delete(res, name)
	case attr.MultiValued() && op == scim.PatchOperationAdd:
		// §3.5.2.1: new values are added; a value already there stays once.
		cur := list(res[name])
		for _, nv := range list(v) {
			if !containsValue(cur, nv) {
				cur = append(cur, nv)
			}
		}
		res[name] = cur
	case attr.MultiValued():
		res[name] = list(v)
	case attr.AttributeType() == "complex":
		// Sub-attributes not in the value stay (§3.5.2.1, §3.5.2.3).
		m, _ := res[name].(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		nv, ok := v.(map[string]any)
		if !ok {
			return scimError(scimerrors.ScimErrorInvalidValue, name+" takes an object")
		}
		for k, x := range nv {
			if sa, ok := subAttribute(attr, k); ok {
				m[sa.Name()] = x
			}
		}
		res[name] = m
	default:
		res[name] = v
	}
	return nil
}

// applyFiltered applies an operation to the values of a multi-valued
// attribute that pass a value filter (§3.5.2: "emails[type eq
// \"work\"].value", "members[value eq \"2819c223…\"]").
func applyFiltered(res map[string]any, s schema.Schema, attr schema.CoreAttribute, expr filter.Expression, sub string, op scim.PatchOperation) error {
	v := scimfilter.NewFilterValidator(expr, schema.Schema{ID: s.ID, Attributes: scimfilter.MultiValuedFilterAttributes(attr)})
	name := attr.Name()
	var kept []any
	matched := 0
	for _, e := range list(res[name]) {
		m, ok := e.(map[string]any)
		if !ok {
			kept = append(kept, e)
			continue
		}
		pass, err := passes(&v, m)
		if err != nil {
			return err
		}
		if !pass {
			kept = append(kept, e)
			continue
		}
		matched++
		switch {
		case op.Op == scim.PatchOperationRemove && sub == "":
			// dropped
		case sub != "":
			setSub(m, sub, op.Op, op.Value)
			kept = append(kept, m)
		default:
			nv, ok := op.Value.(map[string]any)
			if !ok {
				return scimError(scimerrors.ScimErrorInvalidValue, name+" values are objects")
			}
			if op.Op == scim.PatchOperationReplace {
				m = map[string]any{}
			}
			for k, x := range nv {
				if sa, ok := subAttribute(attr, k); ok {
					m[sa.Name()] = x
				}
			}
			kept = append(kept, m)
		}
	}
	if matched == 0 && op.Op != scim.PatchOperationRemove {
		return scimError(scimerrors.ScimErrorNoTarget, "no value of "+name+" matches the filter")
	}
	if len(kept) == 0 {
		delete(res, name)
	} else {
		res[name] = kept
	}
	return nil
}

func setSub(m map[string]any, sub, op string, v any) {
	if op == scim.PatchOperationRemove {
		delete(m, sub)
		return
	}
	m[sub] = v
}

// list is a multi-valued attribute's values: a list, or one value.
func list(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return append([]any(nil), v...)
	case []map[string]any:
		out := make([]any, len(v))
		for i, m := range v {
			out[i] = m
		}
		return out
	default:
		return []any{v}
	}
}

// containsValue: a value with the same "value" sub-attribute (or, for
// simple values, the same value) is there.
func containsValue(vs []any, v any) bool {
	nm, _ := v.(map[string]any)
	for _, c := range vs {
		cm, _ := c.(map[string]any)
		if nm != nil && cm != nil && nm["value"] != nil {
			if reflect.DeepEqual(cm["value"], nm["value"]) {
				return true
			}
			continue
		}
		if reflect.DeepEqual(c, v) {
			return true
		}
	}
	return false
}

func attribute(s schema.Schema, name string) (schema.CoreAttribute, bool) {
	for _, a := range append(append(schema.Attributes(nil), s.Attributes...), schema.CommonAttributes()...) {
		if strings.EqualFold(a.Name(), name) {
			return a, true
		}
	}
	return schema.CoreAttribute{}, false
}

func subAttribute(a schema.CoreAttribute, name string) (schema.CoreAttribute, bool) {
	for _, sa := range a.SubAttributes() {
		if strings.EqualFold(sa.Name(), name) {
			return sa, true
		}
	}
	return schema.CoreAttribute{}, false
}

// extensionOf is the schema extension of s named uri (the enterprise User
// extension of a User).
func extensionOf(s schema.Schema, uri string) (schema.Schema, bool) {
	if s.ID == userSchema.ID && strings.EqualFold(uri, enterpriseSchema.ID) {
		return enterpriseSchema, true
	}
	return schema.Schema{}, false
}

// inExtension runs fn on the extension's attributes of res (an object
// under the extension's id), dropping the object when nothing is left.
func inExtension(res map[string]any, ext schema.Schema, fn func(map[string]any) error) error {
	sub, _ := res[ext.ID].(map[string]any)
	if sub == nil {
		sub = map[string]any{}
	}
	if err := fn(sub); err != nil {
		return err
	}
	if len(sub) == 0 {
		delete(res, ext.ID)
	} else {
		res[ext.ID] = sub
	}
	return nil
}
