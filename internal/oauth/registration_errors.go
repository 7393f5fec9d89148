package oauth

// RFC 7591 §3.2.2 error codes of software statements.
const (
	// CodeInvalidSoftwareStatement: the software statement is invalid
	// (malformed, unverifiable, from an issuer the server does not trust).
	CodeInvalidSoftwareStatement = "invalid_software_statement"
	// CodeUnapprovedSoftwareStatement: the software statement is valid but
	// the server does not approve it for this registration.
	CodeUnapprovedSoftwareStatement = "unapproved_software_statement"
)

// ErrInvalidSoftwareStatement is invalid_software_statement (400).
func ErrInvalidSoftwareStatement(format string, args ...any) *Error {
	return NewError(CodeInvalidSoftwareStatement, format, args...)
}

// ErrUnapprovedSoftwareStatement is unapproved_software_statement (400).
func ErrUnapprovedSoftwareStatement(format string, args ...any) *Error {
	return NewError(CodeUnapprovedSoftwareStatement, format, args...)
}
