/*
 * l_core.c: luaopen_tide_core, the entry of the C module `tide.core`.
 * Each binding file registers its types and functions into the module table.
 */
#include <lauxlib.h>
#include <lua.h>

#include "l_ckpt.h"
#include "l_loop.h"
#include "l_tide.h"

#define TIDE_CORE_VERSION "0.1.0"

int tide_l_store_open(lua_State *L);
int tide_l_frame_open(lua_State *L);
int tide_l_fs_open(lua_State *L);
int tide_l_readline_open(lua_State *L);

int luaopen_tide_core(lua_State *L) {
  lua_newtable(L);
  tide_l_batch_open(L);
  tide_l_store_open(L);
  tide_l_loop_open(L);
  tide_l_frame_open(L);
  tide_l_ckpt_open(L);
  tide_l_fs_open(L);
  tide_l_readline_open(L);
  lua_pushliteral(L, TIDE_CORE_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
