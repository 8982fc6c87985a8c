// floor: the C floor of a start-to-exit measurement, what a lean runtime
// cannot go below: optional v1 cgroups (mkdir + attach + rmdir in memory, cpu
// and pids, with a memory limit), clone(NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET
// [|NEWUSER]), id maps written by the parent, bind + pivot_root, /proc, exec.
// (The team's machine notes measured it first, as minirun.)
// usage: floor [-U base] [-c] ROOTFS cmd...
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
static int pfd[2]; static char **cmd; static char *root; static int userns;
static void die(const char*m){perror(m);_exit(120);}
static int child(void*a){ char c; close(pfd[1]); if(read(pfd[0],&c,1)!=1) die("sync"); close(pfd[0]);
  if(userns){ setgroups(0,NULL); if(setresgid(0,0,0)||setresuid(0,0,0)) die("setresuid"); }
  if(mount(NULL,"/",NULL,MS_REC|MS_PRIVATE,NULL)) die("private");
  if(mount(root,root,NULL,MS_BIND|MS_REC,NULL)) die("bind");
  if(chdir(root)) die("chdir");
  /* userns: proc must be mounted while a fully-visible proc still exists in this mntns (mount_too_revealing) */
  if(mount("proc","proc","proc",MS_NOSUID|MS_NODEV|MS_NOEXEC,NULL)) die("proc");
  if(syscall(SYS_pivot_root,".",".")) die("pivot_root");   /* stack old root on top, then detach it */
  if(umount2(".",MNT_DETACH)) die("umount old");
  if(chdir("/")) die("chdir /");
  sethostname("guest",5);
  execv(cmd[0],cmd); die("exec"); return 0; }
static void wr(const char*p,const char*s){ int f=open(p,O_WRONLY); if(f<0||write(f,s,strlen(s))<0){ perror(p); exit(1);} close(f);}
int main(int argc,char**argv){ int o; long base=-1; int cg=0;
  while((o=getopt(argc,argv,"+U:c"))!=-1){ if(o=='U'){userns=1;base=atol(optarg);} if(o=='c') cg=1; }
  root=argv[optind]; cmd=argv+optind+1; pipe(pfd);
  const char*ctl[]={"memory","cpu","pids",NULL}; char path[256],buf[32];
  if(cg) for(int i=0;ctl[i];i++){ snprintf(path,256,"/sys/fs/cgroup/%s/vserver-bench/mr%d",ctl[i],getpid()); if(mkdir(path,0755)) perror(path); }
  if(cg){ snprintf(path,256,"/sys/fs/cgroup/memory/vserver-bench/mr%d/memory.limit_in_bytes",getpid()); wr(path,"268435456"); }
  int fl=CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWNET|(userns?CLONE_NEWUSER:0);
  static char stack[1<<16]; pid_t p=clone(child,stack+sizeof stack,fl|SIGCHLD,NULL); if(p<0){perror("clone");return 1;}
  close(pfd[0]);
  if(cg) for(int i=0;ctl[i];i++){ snprintf(path,256,"/sys/fs/cgroup/%s/vserver-bench/mr%d/cgroup.procs",ctl[i],getpid()); snprintf(buf,32,"%d",p); wr(path,buf); }
  if(userns){ char m[64]; snprintf(m,64,"0 %ld 65536\n",base); snprintf(path,256,"/proc/%d/uid_map",p); wr(path,m); snprintf(path,256,"/proc/%d/gid_map",p); wr(path,m); }
  write(pfd[1],"x",1); close(pfd[1]); int st; waitpid(p,&st,0);
  if(cg) for(int i=0;ctl[i];i++){ snprintf(path,256,"/sys/fs/cgroup/%s/vserver-bench/mr%d",ctl[i],getpid()); if(rmdir(path)) perror(path); }
  return WIFEXITED(st)?WEXITSTATUS(st):128+WTERMSIG(st); }
