package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf16"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Paper is a paper size the console's pages must print on.
type Paper struct {
	// Name names the paper in file names and messages ("a4").
	Name string
	// Size is its portrait size in inches.
	Size chromedp.PaperSize
}

// The papers of the print tests: A4 (8.27x11.69 in) and US Letter
// (8.5x11 in).
var (
	A4     = Paper{Name: "a4", Size: chromedp.PaperA4}
	Letter = Paper{Name: "letter", Size: chromedp.PaperLetter}
)

// PrintableWidth returns the width in CSS pixels (96 per inch) that the
// paper leaves between margins of marginMM millimetres each side: what a
// page that prints on it must fit.
func (p Paper) PrintableWidth(marginMM float64) float64 {
	return (p.Size.Width*25.4 - 2*marginMM) / 25.4 * 96
}

// PrintableHeight is PrintableWidth for the height.
func (p Paper) PrintableHeight(marginMM float64) float64 {
	return (p.Size.Height*25.4 - 2*marginMM) / 25.4 * 96
}

// EmulatePrint switches the tab's CSS media to print (on) or back to the
// screen, as Chromium's print preview lays the page out.
func EmulatePrint(on bool) chromedp.Action[chromedp.Void] {
	media := ""
	if on {
		media = "print"
	}
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: media}); err != nil {
			return chromedp.Void{}, fmt.Errorf("cannot emulate the %q media: %w", media, err)
		}
		return chromedp.Void{}, nil
	}
}

// PrintPDF prints the tab on paper as Chromium's "Save as PDF" does
// (DevTools Page.printToPDF): portrait, without the browser's header and
// footer, the page's own @page margins applying.
func PrintPDF(p Paper) chromedp.Action[[]byte] {
	return chromedp.PrintToPDF(chromedp.PDFPaper(p.Size), func(pp *page.PrintToPDFParams) {
		off := false
		pp.DisplayHeaderFooter = &off
	})
}

// PDFInfo is what a test checks of a PDF without a PDF library.
type PDFInfo struct {
	// Pages is the number of page objects.
	Pages int
	// Title is the document's title (the HTML page's <title> when
	// Chromium printed it), "" when absent.
	Title string
}

var (
	pdfPageObj   = regexp.MustCompile(`/Type\s*/Page\b[^s]`)
	pdfTitleLit  = regexp.MustCompile(`/Title\s*\(((?:\\.|[^\\)])*)\)`)
	pdfTitleHex  = regexp.MustCompile(`/Title\s*<([0-9A-Fa-f\s]*)>`)
	pdfLitEscape = regexp.MustCompile(`\\([0-7]{1,3}|.)`)
)

// ReadPDF checks that b is a complete PDF file (the header, the end
// marker) and returns its page count and title.
func ReadPDF(b []byte) (PDFInfo, error) {
	var info PDFInfo
	if !bytes.HasPrefix(b, []byte("%PDF-")) {
		return info, fmt.Errorf("not a PDF: it starts with %.12q", b)
	}
	if !bytes.Contains(b[max(0, len(b)-1024):], []byte("%%EOF")) {
		return info, fmt.Errorf("the PDF is cut: no %%%%EOF at its end")
	}
	info.Pages = len(pdfPageObj.FindAll(b, -1))
	if info.Pages == 0 {
		return info, fmt.Errorf("the PDF has no page")
	}
	if m := pdfTitleHex.FindSubmatch(b); m != nil {
		info.Title = decodeUTF16Hex(string(bytes.Join(bytes.Fields(m[1]), nil)))
	} else if m := pdfTitleLit.FindSubmatch(b); m != nil {
		info.Title = string(pdfLitEscape.ReplaceAllFunc(m[1], func(e []byte) []byte {
			if n, err := strconv.ParseUint(string(e[1:]), 8, 8); err == nil {
				return []byte{byte(n)}
			}
			return e[1:]
		}))
	}
	return info, nil
}

// decodeUTF16Hex decodes a PDF hex string: UTF-16BE after a byte order
// mark, else one byte per character.
func decodeUTF16Hex(h string) string {
	raw := make([]byte, 0, len(h)/2)
	for i := 0; i+1 < len(h); i += 2 {
		v, err := strconv.ParseUint(h[i:i+2], 16, 8)
		if err != nil {
			return ""
		}
		raw = append(raw, byte(v))
	}
	if len(raw) >= 2 && raw[0] == 0xfe && raw[1] == 0xff {
		u := make([]uint16, 0, len(raw)/2)
		for i := 2; i+1 < len(raw); i += 2 {
			u = append(u, uint16(raw[i])<<8|uint16(raw[i+1]))
		}
		return string(utf16.Decode(u))
	}
	return string(raw)
}
