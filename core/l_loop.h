/*
 * l_loop.h: the Lua binding of the event loop (core/l_loop.c).
 *
 * tide_l_loop_open(L) expects the module table (tide.core) on top of the
 * stack; it registers the metatables tide.Loop, tide.Timer, tide.Watch,
 * tide.Signal, tide.Server, tide.Input and tide.Poll and adds to the table the functions `loop()` (a new
 * tide.Loop) `raise_signal(name)` (raise() in this process, for tests) and
 * `guess_handle(fd)` (what a file descriptor is).
 * It leaves the stack as it found it and returns 0. luaopen_tide_core calls
 * it once.
 */
#ifndef TIDE_L_LOOP_H
#define TIDE_L_LOOP_H

#include <lua.h>

#include "loop.h"

int tide_l_loop_open(lua_State *L);

/* The loop of the open tide.Loop at idx, for bindings that add their own
 * handles to it (l_http.c); raises when it is not one or is closed. */
tide_loop_t *tide_l_check_loop(lua_State *L, int idx);

#endif
