package password

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		pw      string
		context []string
		want    error
	}{
		{"passphrase", "correct horse battery staple", nil, nil},
		{"random", "q7Vf-2mZp_xL9k", nil, nil},
		{"twelve characters", "tulip-anchor", nil, nil},
		{"multibyte counts characters", "äöüßéèêëçñåø", nil, nil},
		{"at the maximum", strings.Repeat("zebra-kite ", MaxLength/11) + "z", nil, nil},
		{"eleven characters", "tulip-ancho", nil, ErrTooShort},
		{"empty", "", nil, ErrTooShort},
		{"over the maximum", strings.Repeat("x9-", MaxLength), nil, ErrTooLong},
		{"invalid UTF-8", "tulip-anchor\xff", nil, ErrEncoding},
		{"on the list", "password1234", nil, ErrCommon},
		{"on the list, any case", "PassWord1234", nil, ErrCommon},
		{"keyboard walk", "qwertyuiop12", nil, ErrCommon},
		{"digit run", "123456789012", nil, ErrCommon},
		{"famous passphrase", "CorrectHorseBatteryStaple", nil, ErrCommon},
		{"word with a year and a symbol", "Sunshine2026!", nil, ErrCommon},
		{"leetspeak word with digits", "P@ssw0rd2024!", nil, ErrCommon},
		{"digits before a word", "1234567dragon", nil, ErrCommon},
		{"doubled word", "MonkeyMonkey", nil, ErrCommon},
		{"doubled word with digits", "monkeymonkey99", nil, ErrCommon},
		{"one character repeated", "aaaaaaaaaaaaaaaa", nil, ErrCommon},
		{"short unit repeated", "abcdabcdabcd", nil, ErrCommon},
		{"alphabet run", "abcdefghijklmnop", nil, ErrCommon},
		{"descending run", "zyxwvutsrqpon", nil, ErrCommon},
		{"one character repeated and one more", "aaaaaaaaaaab", nil, ErrCommon},
		{"spaces and a digit", "           1", nil, ErrCommon},
		{"symbols and a digit", "!!!!!!!!!!!!1", nil, ErrCommon},
		{"digit repeated and one more", "111111111112", nil, ErrCommon},
		{"repeated unit and a digit", "abcdabcdabcd1", nil, ErrCommon},
		{"alphabet run and a digit", "abcdefghijk1", nil, ErrCommon},
		{"digit run wrapping twice", "12345678901234567890", nil, ErrCommon},
		{"descending digit run wrapping", "09876543210987", nil, ErrCommon},
		{"a run inside words", "grapefruit-abcdef-tulip", nil, nil},
		{"the user name", "alice.liddell", []string{"alice.liddell"}, ErrCommon},
		{"the user name with digits", "Liddell123456", []string{"liddell"}, ErrCommon},
		{"the service name", "agentid2026!!", []string{"agentid"}, ErrCommon},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.pw, tc.context...)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
			if err != nil && len(tc.pw) > 3 && strings.Contains(err.Error(), tc.pw) {
				t.Fatal("the error repeats the password")
			}
		})
	}
}

// TestCommonList: the embedded list is the generated one, of a useful size,
// lower case, and every long entry is refused as it stands.
func TestCommonList(t *testing.T) {
	m := common()
	if len(m) < 3000 {
		t.Fatalf("%d entries, want thousands", len(m))
	}
	for pw := range m {
		if pw != strings.ToLower(pw) {
			t.Fatalf("entry %q is not lower case", pw)
		}
		if len([]rune(pw)) >= MinLength && !errors.Is(Check(pw), ErrCommon) {
			t.Fatalf("listed %q passes Check", pw)
		}
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("correct horse battery staple")
	f.Add("P@ssw0rd2024!")
	f.Fuzz(func(t *testing.T, pw string) {
		err := Check(pw, "alice")
		if err == nil && (len([]rune(pw)) < MinLength || len(pw) > MaxLength) {
			t.Fatalf("accepted %q outside the length bounds", pw)
		}
	})
}
