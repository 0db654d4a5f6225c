/*
 * tests/decoder/symlib.c - a library built stripped (link -s): no .symtab, no
 * debug info, only .dynsym, like the libraries of a Debian system without
 * -dbgsym packages. The decoder must still name its exported functions.
 */
int symlib_exported_cb(int x);

int symlib_exported_cb(int x)
{
    return x * 3 + 1;
}
