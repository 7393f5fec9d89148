package oauth

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// TestTokenResponseConcurrent: token responses written at the same time
// by many handlers, short ones and ones that outgrow the pooled buffer,
// each carry exactly their own bytes: a buffer is never shared by two
// responses in flight, and a reused one keeps nothing of the response
// before it (a longer earlier response, a retrieved key included). Run it
// with -race.
func TestTokenResponseConcurrent(t *testing.T) {
	const workers, per = 8, 300
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				// Lengths vary from a few bytes to past maxPooledResponse, so
				// that a pooled buffer is reused by a shorter response after a
				// longer one, and a grown one is dropped.
				n := (w*per + i) * 37 % (maxPooledResponse + 2048)
				resp := &TokenResponse{
					AccessToken: fmt.Sprintf("w%d-i%d-", w, i) + strings.Repeat(string(rune('a'+w)), n),
					ExpiresIn:   int64(i),
					Scope:       fmt.Sprintf("s%d", w),
				}
				if i%3 == 0 {
					resp.KeyHeaderValue = fmt.Sprintf("Bearer key-of-%d-%d", w, i)
				}
				rec := httptest.NewRecorder()
				WriteTokenResponse(rec, resp)
				if want := encodingJSON(t, resp); !bytes.Equal(rec.Body.Bytes(), want) {
					errs <- fmt.Sprintf("worker %d response %d: %d bytes, want %d:\n%.200q", w, i, rec.Body.Len(), len(want), rec.Body.Bytes())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestTokenResponseEveryField: with every field of TokenResponse set (by
// reflection, so that a field added later is covered without editing this
// test), the appended response is what encoding/json writes: appendJSON
// names each field, in order, with its tag.
func TestTokenResponseEveryField(t *testing.T) {
	var resp TokenResponse
	v := reflect.ValueOf(&resp).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(fmt.Sprintf("value-%d<&>", i))
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000 + i))
		default:
			t.Fatalf("field %s of kind %s: extend appendJSON and this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	if got, want := resp.appendJSON(nil), encodingJSON(t, &resp); !bytes.Equal(got, want) {
		t.Fatalf("appendJSON\n%s\nencoding/json\n%s", got, want)
	}
}
