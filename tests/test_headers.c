/* test_headers.c - each public header compiles on its own (see meson.build). */
#include HEADER
int main(void)
{
    return 0;
}
