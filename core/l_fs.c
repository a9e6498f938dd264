/*
 * l_fs.c: the few file-system calls the Lua side needs and plain Lua lacks:
 * fsync (durable files and directory entries for the file connector's
 * sink files, manifests and range logs), stat, mkdir and directory listing.
 *
 *   core.fsync(path, ...)      -> true | nil, msg, ENAME   (files or directories)
 *   core.stat(path)            -> { mode = "file"|"directory"|"other", size =, mtime = s, mtime_ms = }
 *                                 | nil, msg, ENAME
 *   core.mkdir(path [, mode])  -> true | nil, msg, ENAME   (one level; EEXIST is an error)
 *   core.listdir(path)         -> { names... } (without . and ..) | nil, msg, ENAME
 *
 * Failures are returned, not raised: the callers name the file and what
 * they were doing. An empty path or one with a NUL byte raises
 * (tide_l_check_cname). Nothing here holds a resource across a Lua call that can
 * raise: each function finishes with its descriptor or DIR before pushing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "err.h"
#include "l_tide.h"

static int l_fsync(lua_State *L) {
  int n = lua_gettop(L);
  if (n == 0) return luaL_error(L, "fsync: expected at least one path");
  for (int i = 1; i <= n; i++) tide_l_check_cname(L, i, "fsync: path", TIDE_L_PATH);
  for (int i = 1; i <= n; i++) {
    const char *p = lua_tostring(L, i);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return tide_l_fail(L, -errno, p, NULL);
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    if (rc) return tide_l_fail(L, rc, p, NULL);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_stat(lua_State *L) {
  const char *p = tide_l_check_cname(L, 1, "stat: path", TIDE_L_PATH);
  struct stat st;
  if (stat(p, &st) < 0) return tide_l_fail(L, -errno, p, NULL);
  lua_createtable(L, 0, 4);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory" : "other");
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec);
  lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
  lua_setfield(L, -2, "mtime_ms");
  return 1;
}

static int l_mkdir(lua_State *L) {
  const char *p = tide_l_check_cname(L, 1, "mkdir: path", TIDE_L_PATH);
  lua_Integer mode = luaL_optinteger(L, 2, 0777);
  if (mkdir(p, (mode_t)mode) < 0) return tide_l_fail(L, -errno, p, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* The DIR stays open while names are pushed; only an out-of-memory error
 * of Lua could skip closedir, and then one DIR leaks. */
static int l_listdir(lua_State *L) {
  const char *p = tide_l_check_cname(L, 1, "listdir: path", TIDE_L_PATH);
  DIR *d = opendir(p);
  if (!d) return tide_l_fail(L, -errno, p, NULL);
  lua_newtable(L);
  lua_Integer n = 0;
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, -2, ++n);
  }
  int rc = errno ? -errno : 0;
  closedir(d);
  if (rc) return tide_l_fail(L, rc, p, NULL);
  return 1;
}

int tide_l_fs_open(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"fsync", l_fsync}, {"stat", l_stat}, {"mkdir", l_mkdir}, {"listdir", l_listdir}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
