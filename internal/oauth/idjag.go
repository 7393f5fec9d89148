package oauth

// TokenTypeNA is the token_type of a token exchange response whose token
// is not an access token (RFC 8693 §2.2.1), such as an ID-JAG.
const TokenTypeNA = "N_A"
