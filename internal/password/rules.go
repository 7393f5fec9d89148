package password

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Bounds of a new password. NIST SP 800-63B §5.1.1.2 asks for at least 8
// characters and a blocklist; agentid asks for 12, since its passwords guard
// what agents may do for a person. The maximum keeps the input small while
// fitting any passphrase.
const (
	MinLength = 12      // characters
	MaxLength = 1 << 10 // bytes
)

// Errors of Check. They describe the rule, never the password.
var (
	ErrTooShort = fmt.Errorf("the password must be at least %d characters", MinLength)
	ErrTooLong  = fmt.Errorf("the password must be at most %d bytes", MaxLength)
	ErrEncoding = errors.New("the password must be valid UTF-8")
	ErrCommon   = errors.New("the password is too easy to guess: it is a common password, a word with digits or symbols around it, a repeated pattern or a sequence; choose a phrase of several unrelated words")
)

//go:embed common.txt
var commonText string

// common is the blocklist, loaded on first use.
var common = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 6000)
	for line := range strings.Lines(commonText) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			m[line] = struct{}{}
		}
	}
	return m
})

// Check reports whether pw may be set as a new password (NIST SP 800-63B
// §5.1.1.2): valid UTF-8, MinLength characters to MaxLength bytes, not on
// the embedded list of common passwords, not a listed word with only
// digits and symbols around it (leetspeak undone), not one short unit
// repeated, not a run of consecutive characters, and not one of the
// context words (the user name, the service name) dressed the same way.
// Letter case does not matter. The error is one of the Err values.
func Check(pw string, context ...string) error {
	switch {
	case !utf8.ValidString(pw):
		return ErrEncoding
	case utf8.RuneCountInString(pw) < MinLength:
		return ErrTooShort
	case len(pw) > MaxLength:
		return ErrTooLong
	}
	lower := strings.ToLower(pw)
	if _, ok := common()[lower]; ok || patterned(lower) {
		return ErrCommon
	}
	core := deleet(strings.TrimFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) }))
	if len(core) >= 3 {
		if _, ok := common()[core]; ok {
			return ErrCommon
		}
		if h := len(core) / 2; len(core)%2 == 0 && core[:h] == core[h:] {
			if _, ok := common()[core[:h]]; ok {
				return ErrCommon
			}
		}
	}
	for _, c := range context {
		c = strings.ToLower(strings.TrimSpace(c))
		if c != "" && (lower == c || core == deleet(c) || strings.Contains(lower, c) && len(c)*2 >= len(lower)) {
			return ErrCommon
		}
	}
	return nil
}

// patterned reports whether s is a repeated unit or a run, alone or with
// at most two characters added at either end ("aaaaaaaaaaab",
// "           1", "!abcdefghijk1"): NIST SP 800-63B §5.1.1.2 lists
// repetitive and sequential characters, and a character or two around
// them add next to nothing to a guesser's work.
func patterned(s string) bool {
	rs := []rune(s)
	for i := 0; i <= 2; i++ {
		for j := 0; j <= 2; j++ {
			if core := string(rs[i : len(rs)-j]); len(rs)-i-j >= 8 && (repeated(core) || sequential(core)) {
				return true
			}
		}
	}
	return false
}

// repeated reports whether s is one unit of at most four characters
// repeated ("aaaaaaaaaaaa", "abcabcabcabc", "1212121212121").
func repeated(s string) bool {
	rs := []rune(s)
	for n := 1; n <= 4 && n < len(rs); n++ {
		same := true
		for i := n; i < len(rs); i++ {
			if rs[i] != rs[i-n] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// sequential reports whether s runs up or down one code point at a time
// ("abcdefghijklm", "3456789:;<=>"); digits wrap round ("…78901…",
// "…21098…").
func sequential(s string) bool {
	rs := []rune(s)
	up, down := true, true
	for i := 1; i < len(rs); i++ {
		up = up && (rs[i] == rs[i-1]+1 || rs[i-1] == '9' && rs[i] == '0')
		down = down && (rs[i] == rs[i-1]-1 || rs[i-1] == '0' && rs[i] == '9')
	}
	return up || down
}

// deleet undoes the common letter-for-symbol swaps inside a word.
var deleet = strings.NewReplacer("0", "o", "1", "i", "3", "e", "4", "a", "@", "a", "$", "s", "5", "s", "7", "t", "!", "i").Replace
