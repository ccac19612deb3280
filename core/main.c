/* main.c — the lmpipe command line. */
#include "config.h"
#include <stdio.h>
#include "lmpipe.h"
int main(int argc, char **argv)
{
    (void)argc; (void)argv;
    printf("lmpipe %s\n", PACKAGE_VERSION);
    return 0;
}
