#include "sim.h"
#include <stdio.h>
/* TEMPORARY placeholder during bring-up; replaced by the real module. */
int sim_main(int argc, char **argv)
{
    fprintf(stderr, "sim: not built yet\n");
    return 1;
}
