/*
 * l_core.c: luaopen_tide_core, the entry of the C module `tide.core`.
 * Each binding file registers its types and functions into the module
 * table; TIDE_L_BINDINGS (l_tide.h) lists them, in order.
 */
#include "l_tide.h"

#define TIDE_CORE_VERSION "0.1.0"

int luaopen_tide_core(lua_State *L) {
  lua_newtable(L);
#define TIDE_L_CALL_OPEN(name) tide_l_##name##_open(L);
  TIDE_L_BINDINGS(TIDE_L_CALL_OPEN)
#undef TIDE_L_CALL_OPEN
  lua_pushliteral(L, TIDE_CORE_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
