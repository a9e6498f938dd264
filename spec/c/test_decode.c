/*
 * test_decode.c: framing (lines, CSV records), the three formats and the
 * bad-record policy (fail / drop / dead-letter) of decode.h, over good and
 * bad input: invalid UTF-8, a stray CSV quote, a truncated last line, huge
 * lines, a batch that fills up. Every decoder and batch is closed at the end
 * (ASan's leak check proves it).
 */
#include <stdint.h>

#include "decode.h"
#include "json.h"
#include "jsonl.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

static tide_decoder_t *open_decoder(tide_schema_t *s, tide_format_t fmt, tide_bad_policy_t bad, int multi_line) {
  tide_decode_opts_t o = {fmt, bad, ',', 0, multi_line};
  tide_decoder_t *d = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_decoder_open(s, &o, &d, &err), 0);
  return d;
}

static tide_decoder_t *decoder(tide_schema_t *s, tide_format_t fmt, tide_bad_policy_t bad) {
  return open_decoder(s, fmt, bad, 0);
}

/* The batch's rows as JSON lines, for comparing. */
static const char *rows(const tide_batch_t *b) {
  static char text[4096];
  tide_buf_t o = TIDE_BUF_INIT;
  for (uint32_t i = 0; i < b->nrows; i++) {
    tide_json_enc_row(b, i, &o, 0);
    tide_buf_putc(&o, '\n');
  }
  snprintf(text, sizeof text, "%.*s", (int)o.len, o.data ? o.data : "");
  tide_buf_free(&o);
  return text;
}

static void test_frame_line(void) {
  size_t len, used;
  T_EQ_INT(tide_frame_line("ab\ncd", 5, 0, &len, &used), TIDE_FRAME_RECORD);
  T_EQ_INT(len, 2);
  T_EQ_INT(used, 3);
  T_EQ_INT(tide_frame_line("ab\r\n", 4, 0, &len, &used), TIDE_FRAME_RECORD); /* CRLF */
  T_EQ_INT(len, 2);
  T_EQ_INT(used, 4);
  T_EQ_INT(tide_frame_line("a\r\r\n", 4, 0, &len, &used), TIDE_FRAME_RECORD); /* one CR only */
  T_EQ_INT(len, 2);
  T_EQ_INT(tide_frame_line("\n", 1, 0, &len, &used), TIDE_FRAME_RECORD); /* an empty line */
  T_EQ_INT(len, 0);
  T_EQ_INT(used, 1);
  /* a truncated last line: more is needed unless the text is final */
  T_EQ_INT(tide_frame_line("tail", 4, 0, &len, &used), TIDE_FRAME_MORE);
  T_EQ_INT(tide_frame_line("tail\r", 5, 1, &len, &used), TIDE_FRAME_RECORD);
  T_EQ_INT(len, 4);
  T_EQ_INT(used, 5);
  T_EQ_INT(tide_frame_line("", 0, 1, &len, &used), TIDE_FRAME_MORE);
}

static void test_frame_csv(void) {
  size_t len, used, lines;
  int open;
  const char *t = "1,\"a\nb\",x\n2";
  T_EQ_INT(tide_frame_csv(t, strlen(t), ',', 0, &len, &used, &lines, &open), TIDE_FRAME_RECORD);
  T_EQ_INT(len, 9);
  T_EQ_INT(used, 10);
  T_EQ_INT(lines, 1);
  T_EQ_INT(open, 0);
  /* "" inside quotes, a separator inside quotes, CRLF */
  t = "\"a\"\"b;c\";d\r\n";
  T_EQ_INT(tide_frame_csv(t, strlen(t), ';', 0, &len, &used, &lines, &open), TIDE_FRAME_RECORD);
  T_EQ_INT(len, strlen(t) - 2);
  T_EQ_INT(lines, 0);
  /* a quote inside an unquoted field does not open one: the record ends at its LF */
  t = "1,ab\"c\n2,x\n";
  T_EQ_INT(tide_frame_csv(t, strlen(t), ',', 0, &len, &used, &lines, &open), TIDE_FRAME_RECORD);
  T_EQ_INT(used, 7);
  /* an open quote waits for more, and is reported at the end of final text */
  t = "1,\"abc\n2,x\n";
  T_EQ_INT(tide_frame_csv(t, strlen(t), ',', 0, &len, &used, &lines, &open), TIDE_FRAME_MORE);
  T_EQ_INT(tide_frame_csv(t, strlen(t), ',', 1, &len, &used, &lines, &open), TIDE_FRAME_RECORD);
  T_EQ_INT(open, 1);
  T_EQ_INT(used, strlen(t));
}

static void test_formats(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("n int, s string?");
  tide_batch_t *b = tide_batch_new(s, 0);

  tide_decoder_t *d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_FAIL);
  const char *t = "{\"n\":1,\"s\":\"a\"}\r\n  \n\t{\"n\":2}\n{\"n\":3}";
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 0, 1, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"n\":1,\"s\":\"a\"}\n{\"n\":2,\"s\":null}\n");
  T_EQ_INT(r.used, strlen(t) - strlen("{\"n\":3}"));
  T_EQ_INT(r.lines, 3);
  /* the truncated last line counts once the text is final */
  T_EQ_INT(tide_decode(d, b, "{\"n\":3}", 7, 1, 4, &r, &err), 0);
  T_EQ_INT(r.used, 7);
  T_EQ_INT(r.lines, 0);
  T_EQ_INT(b->nrows, 3);
  tide_decoder_close(d);
  tide_batch_clear(b);

  d = open_decoder(s, TIDE_FMT_CSV, TIDE_BAD_FAIL, 1); /* multi_line: the quoted field spans two lines */
  t = "1,\"x,\"\"y\"\"\nz\"\r\n\n2,\n3,\"\"\n";
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"n\":1,\"s\":\"x,\\\"y\\\"\\nz\"}\n{\"n\":2,\"s\":null}\n{\"n\":3,\"s\":\"\"}\n");
  T_EQ_INT(r.lines, 5);
  T_EQ_INT(r.used, strlen(t));
  tide_decoder_close(d);
  tide_batch_clear(b);
  /* by default a record is a line: the same text has a bad first record */
  d = decoder(s, TIDE_FMT_CSV, TIDE_BAD_FAIL);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), TIDE_EPARSE);
  T_EQ_STR(err.msg, "line 1: field 2: unterminated quoted field");
  tide_decoder_close(d);
  tide_batch_free(b);

  /* text: every line is a row, blank ones too; one string column only */
  tide_decode_opts_t o = {TIDE_FMT_TEXT, TIDE_BAD_FAIL, 0, 0, 0};
  T_EQ_INT(tide_decoder_open(s, &o, &d, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "the text format needs a schema of one string column");
  T_CHECK(d == NULL);
  tide_schema_unref(s);
  s = schema("value string");
  b = tide_batch_new(s, 0);
  d = decoder(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL);
  t = "one\r\n\ntwo \nlast";
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"value\":\"one\"}\n{\"value\":\"\"}\n{\"value\":\"two \"}\n{\"value\":\"last\"}\n");
  T_EQ_INT(r.lines, 3);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
}

/* The same bad input under the three policies. */
static void test_policies(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("n int");
  const char *t = "{\"n\":1}\n{\"n\":\"x\"}\n{\"n\":3}\n{\"n\":\nnot json\n{\"n\":6}\n";

  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_FAIL);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 10, &r, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "line 11: field 'n': expected int, got \"x\"");
  T_EQ_INT(b->nrows, 1); /* the records before the bad one */
  T_EQ_INT(r.used, 8);
  T_EQ_INT(r.lines, 1);
  tide_decoder_close(d);
  tide_batch_free(b);

  b = tide_batch_new(s, 0);
  d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_DROP);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 10, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"n\":1}\n{\"n\":3}\n{\"n\":6}\n");
  T_EQ_INT(r.dropped, 3);
  T_EQ_INT(r.ndropped_lines, 3);
  T_EQ_INT(r.dropped_lines[0], 11);
  T_EQ_INT(r.dropped_lines[1], 13);
  T_EQ_INT(r.dropped_lines[2], 14);
  T_EQ_INT(r.used, strlen(t));
  T_EQ_INT(r.lines, 6);
  T_EQ_INT(r.ndead, 0);
  tide_decoder_close(d);
  tide_batch_free(b);

  b = tide_batch_new(s, 0);
  d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_DEAD_LETTER);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 10, &r, &err), 0);
  T_EQ_INT(b->nrows, 3);
  T_EQ_INT(r.dropped, 0);
  T_EQ_INT(r.ndead, 3);
  T_EQ_INT(r.dead[0].line, 11);
  T_EQ_STR(r.dead[0].reason, "field 'n': expected int, got \"x\"");
  T_EQ_STR(r.dead[0].text, "{\"n\":\"x\"}");
  T_EQ_INT(r.dead[1].line, 13);
  T_EQ_STR(r.dead[1].text, "{\"n\":");
  T_CHECK(strstr(r.dead[1].reason, "invalid JSON") == r.dead[1].reason);
  T_EQ_INT(r.dead[2].line, 14);
  T_EQ_STR(r.dead[2].text, "not json");
  /* the next call starts a fresh list */
  T_EQ_INT(tide_decode(d, b, "{\"n\":7}\n", 8, 1, 16, &r, &err), 0);
  T_EQ_INT(r.ndead, 0);
  tide_decoder_close(d);
  tide_batch_free(b);

  /* more bad lines than are kept: all counted, the first ten named */
  tide_buf_t many = TIDE_BUF_INIT;
  for (int i = 0; i < 25; i++) tide_buf_puts(&many, "x\n");
  b = tide_batch_new(s, 0);
  d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_DROP);
  T_EQ_INT(tide_decode(d, b, many.data, many.len, 1, 1, &r, &err), 0);
  T_EQ_INT(r.dropped, 25);
  T_EQ_INT(r.ndropped_lines, TIDE_DECODE_KEEP);
  T_EQ_INT(r.dropped_lines[9], 10);
  tide_buf_free(&many);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
}

static void test_invalid_utf8(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("value string");
  const char *t = "ok\nbad \xc3\x28 seq\n\xed\xa0\x80\nfine \xc3\xa9\n";
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "line 2: invalid UTF-8 at byte 5");
  T_EQ_INT(b->nrows, 1);
  tide_decoder_close(d);
  tide_batch_clear(b);
  d = decoder(s, TIDE_FMT_TEXT, TIDE_BAD_DEAD_LETTER);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"value\":\"ok\"}\n{\"value\":\"fine \xc3\xa9\"}\n");
  T_EQ_INT(r.ndead, 2);
  T_EQ_INT(r.dead[1].line, 3); /* a surrogate is not UTF-8 */
  T_EQ_INT(r.dead[1].len, 3);
  T_CHECK(memcmp(r.dead[1].text, "\xed\xa0\x80", 3) == 0);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);

  /* in CSV and JSON too */
  s = schema("a string, b int");
  b = tide_batch_new(s, 0);
  d = decoder(s, TIDE_FMT_CSV, TIDE_BAD_FAIL);
  T_EQ_INT(tide_decode(d, b, "\xff,1\n", 5, 1, 1, &r, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "line 1: field 'a': invalid UTF-8");
  tide_decoder_close(d);
  d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_FAIL);
  T_CHECK(tide_decode(d, b, "{\"a\":\"\xff\",\"b\":1}\n", 16, 1, 1, &r, &err) != 0);
  T_EQ_INT(b->nrows, 0);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
}

/* By default a record is a line (Spark's multiLine = false): a stray quote
 * makes its own line bad, whatever follows, and nothing waits for it to close. */
static void test_stray_quote(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("n int, s string, x double");
  /* line 2 of 1000 opens a quote that never closes; line 500 holds quotes */
  tide_buf_t t = TIDE_BUF_INIT;
  char line[64];
  for (int i = 1; i <= 1000; i++) {
    int k = i == 2 ? snprintf(line, sizeof line, "1,\"abc,2.0\n")
            : i == 500 ? snprintf(line, sizeof line, "%d,\"q\"\"uote\",1.5\n", i)
                       : snprintf(line, sizeof line, "%d,s%d,%d.5\n", i, i, i);
    tide_buf_append(&t, line, (size_t)k);
  }
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_CSV, TIDE_BAD_DROP);
  /* not final: the text ends with an LF, so every record is complete */
  T_EQ_INT(tide_decode(d, b, t.data, t.len, 0, 1, &r, &err), 0);
  T_EQ_INT(b->nrows, 999);
  T_EQ_INT(r.dropped, 1);
  T_EQ_INT(r.dropped_lines[0], 2);
  T_EQ_INT(r.used, t.len);
  T_EQ_INT(r.lines, 1000);
  tide_decoder_close(d);
  tide_batch_clear(b);
  /* failing, it names that line */
  d = decoder(s, TIDE_FMT_CSV, TIDE_BAD_FAIL);
  T_EQ_INT(tide_decode(d, b, t.data, t.len, 0, 1, &r, &err), TIDE_EPARSE);
  T_EQ_STR(err.msg, "line 2: field 2: unterminated quoted field");
  T_EQ_INT(b->nrows, 1);
  tide_decoder_close(d);
  tide_batch_clear(b);
  /* dead-lettered: that line, byte for byte */
  d = decoder(s, TIDE_FMT_CSV, TIDE_BAD_DEAD_LETTER);
  T_EQ_INT(tide_decode(d, b, t.data, t.len, 1, 1, &r, &err), 0);
  T_EQ_INT(b->nrows, 999);
  T_EQ_INT(r.ndead, 1);
  T_EQ_INT(r.dead[0].line, 2);
  T_EQ_STR(r.dead[0].text, "1,\"abc,2.0");
  T_EQ_STR(r.dead[0].reason, "field 2: unterminated quoted field");
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_buf_free(&t);
  tide_schema_unref(s);
}

/* multi_line: quoted fields span lines; an open quote costs its first line only. */
static void test_stray_quote_multi_line(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("n int, s string");
  const char *t = "1,a\n2,d\"x\n3,\"e\"f\n4,\"open\n5,c\n6,g";
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = open_decoder(s, TIDE_FMT_CSV, TIDE_BAD_DROP, 1);
  /* not final: the quote opened on line 4 may close in text still to come */
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 0, 1, &r, &err), 0);
  T_EQ_INT(b->nrows, 2);
  T_EQ_INT(r.dropped, 1);
  T_EQ_INT(r.used, 17);
  T_EQ_INT(r.lines, 3);
  tide_decoder_close(d);
  /* final, failing: the record of line 4 is bad */
  d = open_decoder(s, TIDE_FMT_CSV, TIDE_BAD_FAIL, 1);
  T_EQ_INT(tide_decode(d, b, t + 17, strlen(t) - 17, 1, 4, &r, &err), TIDE_EPARSE);
  T_EQ_STR(err.msg, "line 4: unterminated quoted field");
  tide_decoder_close(d);
  tide_batch_clear(b);
  /* dead-lettered, it costs its first line only; a quote inside an
   * unquoted field is a character; text after a closing quote is bad */
  d = open_decoder(s, TIDE_FMT_CSV, TIDE_BAD_DEAD_LETTER, 1);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"n\":1,\"s\":\"a\"}\n{\"n\":2,\"s\":\"d\\\"x\"}\n{\"n\":5,\"s\":\"c\"}\n{\"n\":6,\"s\":\"g\"}\n");
  T_EQ_INT(r.ndead, 2);
  T_EQ_INT(r.dead[0].line, 3);
  T_EQ_STR(r.dead[0].reason, "field 2: text after the closing quote");
  T_EQ_INT(r.dead[1].line, 4);
  T_EQ_STR(r.dead[1].text, "4,\"open");
  T_EQ_STR(r.dead[1].reason, "unterminated quoted field");
  T_EQ_INT(r.used, strlen(t));
  T_EQ_INT(r.lines, 5);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
}

static void test_huge_lines(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("value string");
  size_t big = 8u << 20;
  char *t = malloc(big + 16);
  memset(t, 'x', big);
  memcpy(t + big, "\nsmall\n", 7);
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL);
  /* cut before its LF: nothing yet; whole: one 8 MiB row, then the next */
  T_EQ_INT(tide_decode(d, b, t, big, 0, 1, &r, &err), 0);
  T_EQ_INT(r.used, 0);
  T_EQ_INT(b->nrows, 0);
  T_EQ_INT(tide_decode(d, b, t, big + 7, 0, 1, &r, &err), 0);
  T_EQ_INT(b->nrows, 2);
  size_t n;
  tide_col_str(&b->cols[0], 0, &n);
  T_EQ_INT(n, big);
  T_EQ_INT(r.lines, 2);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);

  /* a huge JSON record that breaks the schema is dead-lettered whole */
  s = schema("n int");
  memcpy(t, "{\"n\":\"", 6);
  memcpy(t + big - 2, "\"}\n", 3);
  b = tide_batch_new(s, 0);
  d = decoder(s, TIDE_FMT_JSON, TIDE_BAD_DEAD_LETTER);
  T_EQ_INT(tide_decode(d, b, t, big + 1, 1, 1, &r, &err), 0);
  T_EQ_INT(r.ndead, 1);
  T_EQ_INT(r.dead[0].len, big);
  T_CHECK(strstr(r.dead[0].reason, "expected int, got \"xxx") != NULL);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
  free(t);
}

/* A batch that fills up stops the call; the rest goes in the next batch. */
static void test_full_batch(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("value string");
  size_t n = TIDE_BATCH_MAX_ROWS + 5;
  char *t = malloc(n);
  memset(t, '\n', n);
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL);
  T_EQ_INT(tide_decode(d, b, t, n, 1, 1, &r, &err), 0);
  T_EQ_INT(b->nrows, TIDE_BATCH_MAX_ROWS - 1);
  T_EQ_INT(r.used, TIDE_BATCH_MAX_ROWS - 1);
  T_EQ_INT(r.lines, TIDE_BATCH_MAX_ROWS - 1);
  tide_batch_clear(b);
  T_EQ_INT(tide_decode(d, b, t + r.used, n - r.used, 1, 1 + r.lines, &r, &err), 0);
  T_EQ_INT(b->nrows, 6);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
  free(t);
}

/* Dead letters keep any bytes: the reason stays UTF-8 even when it quotes
 * bytes that are not, and the two texts a dead-letter topic stores. */
static void test_dead_letter_text(void) {
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  tide_schema_t *s = schema("n int, s string");
  const char *t = "\xff\xfe,x\n2,ok\n";
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_CSV, TIDE_BAD_DEAD_LETTER);
  T_EQ_INT(tide_decode(d, b, t, strlen(t), 1, 1, &r, &err), 0);
  T_EQ_INT(b->nrows, 1);
  T_EQ_INT(r.ndead, 1);
  T_CHECK(r.dead[0].len == 4 && memcmp(r.dead[0].text, "\xff\xfe,x", 4) == 0);
  T_EQ_STR(r.dead[0].reason, "field 'n': expected int, got \"\xef\xbf\xbd\xef\xbf\xbd\"");
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);

  tide_buf_t o = TIDE_BUF_INIT;
  T_EQ_INT(tide_utf8_repair("caf\xc3\xa9 \xc3\x28 \xed\xa0\x80", 12, &o), 0);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "caf\xc3\xa9 \xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  o.len = 0;
  T_EQ_INT(tide_utf8_repair("", 0, &o), 0);
  T_EQ_INT(o.len, 0);
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\x00\x80"};
  const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "/wCA"};
  for (int i = 0; i < 8; i++) {
    o.len = 0;
    T_EQ_INT(tide_base64_enc(in[i], i == 7 ? 3 : strlen(in[i]), &o), 0);
    tide_buf_cstr(&o);
    T_EQ_STR(o.data, out[i]);
  }
  tide_buf_free(&o);
}

/* Kept lines: added, read back by range, decoded, forgotten. */
static void test_lines(void) {
  tide_lines_t l = TIDE_LINES_INIT;
  const char *p;
  size_t n;
  T_EQ_INT(tide_lines_text(&l, 0, 0, &p, &n), 0);
  T_EQ_INT(n, 0);
  T_EQ_INT(tide_lines_add(&l, "one", 3), 0);
  T_EQ_INT(tide_lines_add(&l, "", 0), 0);
  T_EQ_INT(tide_lines_add(&l, "three\r", 6), 0);
  T_EQ_INT(l.count, 3);
  T_EQ_INT(tide_lines_text(&l, 1, 3, &p, &n), 0);
  T_CHECK(n == 8 && memcmp(p, "\nthree\r\n", 8) == 0);
  T_EQ_INT(tide_lines_text(&l, 2, 4, &p, &n), TIDE_EINVAL);
  T_EQ_INT(tide_lines_text(&l, 2, 1, &p, &n), TIDE_EINVAL);
  tide_lines_forget(&l, 1);
  T_EQ_INT(l.base, 1);
  T_EQ_INT(tide_lines_text(&l, 0, 1, &p, &n), TIDE_EINVAL); /* forgotten */
  T_EQ_INT(tide_lines_text(&l, 1, 2, &p, &n), 0);
  T_CHECK(n == 1 && p[0] == '\n');
  /* decoded, they are the lines added */
  tide_schema_t *s = schema("value string");
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_decoder_t *d = decoder(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL);
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  T_EQ_INT(tide_lines_text(&l, 1, 3, &p, &n), 0);
  T_EQ_INT(tide_decode(d, b, p, n, 1, 2, &r, &err), 0);
  T_EQ_STR(rows(b), "{\"value\":\"\"}\n{\"value\":\"three\"}\n");
  T_EQ_INT(r.lines, 2);
  tide_decoder_close(d);
  tide_batch_free(b);
  tide_schema_unref(s);
  /* many lines, forgotten as they come: the text slides down, never grows without bound */
  char line[32];
  for (int i = 0; i < 100000; i++) {
    int k = snprintf(line, sizeof line, "line %d", i);
    T_CHECK(tide_lines_add(&l, line, (size_t)k) == 0);
    if (i % 100 == 99) tide_lines_forget(&l, l.count - 10);
  }
  T_CHECK(l.text.cap <= 8192);
  T_EQ_INT(tide_lines_text(&l, l.count - 1, l.count, &p, &n), 0);
  T_CHECK(n == 11 && memcmp(p, "line 99999\n", 11) == 0);
  tide_lines_forget(&l, UINT64_MAX);
  T_EQ_INT(l.base, l.count);
  T_EQ_INT(l.text.len, 0);
  tide_lines_free(&l);
  T_EQ_INT(l.count, 0);
}

int main(void) {
  T_RUN(test_lines);
  T_RUN(test_frame_line);
  T_RUN(test_frame_csv);
  T_RUN(test_formats);
  T_RUN(test_policies);
  T_RUN(test_invalid_utf8);
  T_RUN(test_stray_quote);
  T_RUN(test_stray_quote_multi_line);
  T_RUN(test_dead_letter_text);
  T_RUN(test_huge_lines);
  T_RUN(test_full_batch);
  T_DONE();
}
