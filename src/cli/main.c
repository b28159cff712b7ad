/* ipfs-accelerate: the command-line front end (being built). */
#include <stdio.h>

#include "ia/base.h"

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "usage: ipfs-accelerate COMMAND ...\n");
    return 2;
}
