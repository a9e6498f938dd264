/*
 * l_ckpt.h: the Lua binding of the checkpoint store (core/l_ckpt.c), and
 * its change sets.
 *
 * A change set (tide.StateChanges) is one state database's changes for a
 * commit, packed in one buffer: what an operator's state hands to
 * ck:commit without a Lua value per change. The engine's aggregations fill
 * theirs in C (agg:take_changes, core/l_agg.c); Lua code builds one with
 * core.state_changes() and cs:put(key, value) / cs:del(key). A commit
 * applies the ops in the order they were added. Records, host byte order:
 *   u8 op (1 put, 2 delete) | u32 klen | u32 vlen | key | value
 *
 * tide_l_ckpt_open(L) expects the module table on top of the stack; it
 * registers tide.Checkpoint, tide.CheckpointIter and tide.StateChanges and
 * adds `checkpoint` and `state_changes` to the table. Returns 0.
 */
#ifndef TIDE_L_CKPT_H
#define TIDE_L_CKPT_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "ckpt.h"

typedef struct tide_l_changes {
  tide_buf_t buf;      /* the records */
  size_t nputs, ndels; /* how many of each */
} tide_l_changes_t;

int tide_l_ckpt_open(lua_State *L);

/* The open tide.Checkpoint at idx (raises otherwise): a pointer to its
 * handle, which the userdata owns and which becomes NULL when it is
 * closed. A holder keeps the userdata alive (a user value) and checks
 * the handle before each use. */
struct tide_ckpt;
struct tide_ckpt **tide_l_check_ckpt(lua_State *L, int idx);

/* Push a new, empty change set (freed by __gc). */
tide_l_changes_t *tide_l_push_changes(lua_State *L);

/* Append a delete of key. Returns 0 or -ENOMEM (nothing added). */
int tide_l_changes_del(tide_l_changes_t *c, const void *key, size_t klen);

/* Append a put of key whose value is what the caller appends to c->buf
 * next: put_begin writes the record's head and key and sets *mark;
 * after the value, put_end(c, mark) closes the record. To give up on it,
 * set c->buf.len = mark (put_end not called). Returns 0 or -ENOMEM
 * (nothing added). */
int tide_l_changes_put_begin(tide_l_changes_t *c, const void *key, size_t klen, size_t *mark);
void tide_l_changes_put_end(tide_l_changes_t *c, size_t mark);

/* The change set at idx (raises otherwise). */
tide_l_changes_t *tide_l_check_changes(lua_State *L, int idx);

/* Walk a change set's records: the record at p (c->buf.data first, then
 * what this returns, c->nputs + c->ndels times) into *op (val NULL for a
 * delete); returns the next record. */
const char *tide_l_changes_next(const char *p, tide_ckpt_op_t *op);

#endif
