// Must NOT compile under the warnings test's flags: a parameter shadows a member (-Wshadow).
struct Registry {
  int size = 0;
  void Resize(int size) { this->size = size; }
};
int main() {
  Registry registry;
  registry.Resize(1);
  return registry.size - 1;
}
